//! Whether a configured secret is fit to guard the service: long enough, and not one of the
//! placeholders that example files (ours and others') ship. A secret anyone can read in a
//! repository opens every admin call and mints tokens of any role, so barrage refuses to start
//! with one rather than warn. Pure: the config check calls it and names the key.

/// Fewest characters accepted for `auth.token_secret` and `auth.admin_key`.
pub const MIN_SECRET_CHARS: usize = 16;

/// Values (lowercased) that example files ship; refused whatever their length.
const KNOWN_PLACEHOLDERS: &[&str] = &[
    "change-me",
    "change-me-admin-key",
    "change-me-token-secret",
    "changeme",
    "secret",
    "password",
    "admin",
    "barrage-secret",
    "your-secret-here",
    "your-admin-key",
    "0123456789abcdef",
];

/// Words that mark a value as a placeholder wherever they appear in it.
const PLACEHOLDER_MARKERS: &[&str] = &["change-me", "changeme", "change_me", "placeholder", "<"];

/// Why `value` is not acceptable as a secret, or `None` when it is.
pub fn weakness(value: &str) -> Option<String> {
    let trimmed = value.trim();
    let lower = trimmed.to_ascii_lowercase();
    if KNOWN_PLACEHOLDERS.contains(&lower.as_str())
        || PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m))
    {
        return Some("is a placeholder from an example file; set a random value".to_string());
    }
    let chars = trimmed.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Some(format!(
            "is {chars} characters; at least {MIN_SECRET_CHARS} are needed \
             (or leave it empty: generated and kept in <data_dir>/secrets.toml)"
        ));
    }
    if trimmed
        .chars()
        .all(|c| c == trimmed.chars().next().unwrap_or(c))
    {
        return Some("is one character repeated; set a random value".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_short_values_are_refused_random_ones_pass() {
        for bad in [
            "change-me-admin-key",
            "CHANGE-ME-TOKEN-SECRET",
            "please-changeme-now-0123",
            "<at least 16 random characters>",
            "short",
            "aaaaaaaaaaaaaaaaaaaa",
            "admin",
        ] {
            assert!(weakness(bad).is_some(), "{bad} refused");
        }
        assert!(weakness("short").unwrap().contains("5 characters"));
        for good in ["test-admin-key-0123456789", "q8Vn3LxT0pZr7sKc2HwY"] {
            assert_eq!(weakness(good), None, "{good} accepted");
        }
    }
}
