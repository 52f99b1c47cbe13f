//! ollama (being written).
