//! [`FileStore`]: placeholder, being written.
use std::path::PathBuf;

/// Tokens in a file (being written).
#[derive(Debug, Clone)]
pub struct FileStore {
    #[allow(dead_code)]
    path: PathBuf,
}
