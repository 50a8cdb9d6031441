//! What every sst1mflow crate shares and nothing else: the one error type (a message naming the
//! file or thing at fault) and the helpers that suggest the name a user probably meant.
pub mod error;
pub mod text;
