//! vectorstores
