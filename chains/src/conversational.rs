//! conversational (being written).
