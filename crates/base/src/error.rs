//! One error type for the whole tool: a message that names the file or thing at fault and the
//! problem, optionally with the underlying cause. The CLI prints it and exits non-zero.
use std::fmt;

#[derive(Debug)]
pub struct Error {
    message: String,
    cause: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn msg(message: impl Into<String>) -> Error {
        Error { message: message.into(), cause: None }
    }

    pub fn io(message: impl Into<String>, e: std::io::Error) -> Error {
        Error { message: message.into(), cause: Some(e.to_string()) }
    }

    #[cfg(feature = "sqlite")]
    pub fn db(message: impl Into<String>, e: rusqlite::Error) -> Error {
        Error { message: message.into(), cause: Some(e.to_string()) }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(c) => write!(f, "{}: {}", self.message, c),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The provenance database's errors convert with `?` (only the engine, which enables the
/// `sqlite` feature, speaks SQL).
#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::db("provenance database error", e)
    }
}
