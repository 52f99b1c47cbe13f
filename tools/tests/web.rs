//! web tool tests (being written).
