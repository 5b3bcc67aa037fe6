//! Key containment: every key a sink touches is checked here first.

use crate::{Error, STATE_DIR};

/// Checks that `key` is a relative, `/`-separated key that stays inside the destination:
/// not empty, no leading `/`, no empty, `.` or `..` component, no backslash, no NUL or other
/// control character, and not one of the sink's own files (`.dsfiles/tmp/…`, `.dsfiles/lock`,
/// `.dsfiles/cas.lock`).
pub fn validate_key(key: &str) -> Result<(), Error> {
    let reject = |reason| {
        Err(Error::InvalidKey {
            key: key.escape_debug().to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return reject("the key is empty");
    }
    if key.starts_with('/') {
        return reject("keys are relative: no leading `/`");
    }
    if key.contains('\\') {
        return reject("backslashes are not allowed");
    }
    if key.chars().any(char::is_control) {
        return reject("NUL and control characters are not allowed");
    }
    for component in key.split('/') {
        match component {
            "" => return reject("empty path component"),
            "." | ".." => return reject("`.` and `..` components are not allowed"),
            _ => {}
        }
    }
    if let Some(rest) = key
        .strip_prefix(STATE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        && (rest == "lock" || rest == "cas.lock" || rest == "tmp" || rest.starts_with("tmp/"))
    {
        return reject("reserved for the sink's own temporary and lock files");
    }
    Ok(())
}

/// Like [`validate_key`] but `""` (the whole destination) is allowed.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        Ok(())
    } else {
        validate_key(prefix.strip_suffix('/').unwrap_or(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, ok: bool) {
        let result = validate_key(key);
        assert_eq!(result.is_ok(), ok, "key {key:?}: {result:?}");
        if let Err(e) = result {
            assert!(matches!(e, Error::InvalidKey { .. }), "{e:?}");
            assert!(e.to_string().contains("invalid key `"), "{e}");
        }
    }

    #[test]
    fn accepted_keys() {
        for key in [
            "a",
            "1/champ/Pièce jointe/a.pdf",
            "a/b/c d (2).pdf",
            ".dsfiles/manifest.json",
            ".dsfiles/tmpfile",
            "..a/b..",
            "a/.hidden",
        ] {
            check(key, true);
        }
    }

    #[test]
    fn rejected_keys() {
        for key in [
            "",
            "/etc/passwd",
            "../x.pdf",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a/b\\c",
            "a\0b",
            "a\nb",
            ".dsfiles/lock",
            ".dsfiles/cas.lock",
            ".dsfiles/tmp",
            ".dsfiles/tmp/x.part",
        ] {
            check(key, false);
        }
    }

    #[test]
    fn error_names_the_key_escaped() {
        let e = validate_key("a\0/../b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid key `a\\0/../b`: NUL and control characters are not allowed"
        );
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("a/b/").is_ok());
        assert!(validate_prefix("../").is_err());
    }
}
