//! Anthropic's Messages API (Claude). Work in progress in this commit series.
