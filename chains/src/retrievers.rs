//! retrievers (being written).
