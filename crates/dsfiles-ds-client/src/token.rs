//! The API token: a newtype that never prints its value.

use std::fmt;

use crate::Error;

/// A DS API token. `Debug` and `Display` print `Token(<redacted>)`; only [`Token::expose`]
/// gives the value, for the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Checks and wraps a token. Surrounding whitespace (a token file's final newline) is
    /// trimmed; an empty token or one with inner whitespace or control characters is refused.
    pub fn new(s: impl Into<String>) -> Result<Token, Error> {
        let s = s.into();
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(Error::InvalidToken {
                reason: "the token is empty",
            });
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidToken {
                reason: "the token contains whitespace, control or non-ASCII characters",
            });
        }
        Ok(Token(trimmed.to_owned()))
    }

    /// The secret value. Only for the `Authorization` header: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() -> Result<(), Error> {
        let token = Token::new("s3cr3t-t0k3n\n")?;
        assert_eq!(token.expose(), "s3cr3t-t0k3n");
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{token:#?}"),
            format!("{:?}", Some(&token)),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("Token(<redacted>)"), "{shown}");
        }
        Ok(())
    }

    #[test]
    fn empty_or_malformed_tokens_are_refused() {
        for bad in ["", "  \n", "abc def", "abc\u{7f}", "jeton-é"] {
            let err = Token::new(bad).err();
            assert!(
                matches!(err, Some(Error::InvalidToken { .. })),
                "{bad:?}: {err:?}"
            );
        }
    }
}
