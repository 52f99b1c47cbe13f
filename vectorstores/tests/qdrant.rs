//! Qdrant tests (being written).
