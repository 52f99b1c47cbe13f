//! llms
