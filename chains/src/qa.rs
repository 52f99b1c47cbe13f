//! qa (being written).
