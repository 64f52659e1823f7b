//! Display names as viewers see them. A name is shown beside text other viewers read, so it
//! must not be able to pass for something it is not: bidirectional overrides and isolates
//! (U+202A-202E, U+2066-2069, marks) reorder what follows them on screen, zero-width and other
//! invisible characters make "Sys\u{200B}tem" look like "System" while comparing unequal, and a
//! viewer called "System" or "Host" reads as the room's own voice. Pure: the guest-token API
//! refuses such names, and every name shown (from any token or gift) goes through [`visible`].

/// Names only the service and the room's staff speak as (compared folded, see [`fold`]).
const RESERVED: &[&str] = &[
    "system",
    "admin",
    "administrator",
    "moderator",
    "mod",
    "host",
    "barrage",
    "server",
    "official",
];

/// Characters that change how text is laid out or are not seen at all.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                  // soft hyphen
            | '\u{034F}'            // combining grapheme joiner
            | '\u{061C}'            // arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180E}'            // mongolian vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'            // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}' // tags
    ) || c.is_control()
}

/// `name` without invisible or layout-changing characters, runs of whitespace made one space,
/// trimmed.
pub fn visible(name: &str) -> String {
    let kept: String = name.chars().filter(|c| !invisible(*c)).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lowercased letters and digits only: "S-y s_t.e m" and "SYSTEM" fold alike.
fn fold(name: &str) -> String {
    visible(name)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `name` passes for the service or the room's staff.
pub fn is_reserved(name: &str) -> bool {
    let folded = fold(name);
    RESERVED.contains(&folded.as_str())
}

/// Whether `name` holds characters [`visible`] would take out.
pub fn has_invisible(name: &str) -> bool {
    name.chars().any(invisible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_bidi_characters_are_taken_out_and_staff_names_are_reserved() {
        assert_eq!(visible("Sys\u{200B}tem"), "System");
        assert_eq!(visible("\u{202E}nimda\u{202C} Bo"), "nimda Bo");
        assert_eq!(visible("  Mia \u{2066}x\u{2069}  "), "Mia x");
        assert!(has_invisible("a\u{FEFF}b") && !has_invisible("Zoë 李"));
        for reserved in [
            "System",
            "SYSTEM",
            "Sys\u{200B}tem",
            "s y s t e m",
            "Host",
            "admin.",
        ] {
            assert!(is_reserved(reserved), "{reserved}");
        }
        for fine in ["Systemic", "Hosteller", "Mia", "李雷"] {
            assert!(!is_reserved(fine), "{fine}");
        }
    }
}
