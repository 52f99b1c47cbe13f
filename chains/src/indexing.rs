//! indexing (being written).
