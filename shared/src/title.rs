//! Draft titles: `Type: message` of the outermost exception, whitespace collapsed, at most 120
//! Unicode scalar values including the `…` that marks a cut (DESIGN.md §4 "Title").

use crate::limits::TITLE_CHARS;

pub fn title(kind: Option<&str>, message: Option<&str>) -> String {
    let kind = kind.map(str::trim).filter(|k| !k.is_empty());
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let mut raw = String::new();
    match (kind, message) {
        (Some(k), Some(m)) => {
            raw.push_str(k);
            raw.push_str(": ");
            raw.push_str(m);
        }
        (Some(k), None) => raw.push_str(k),
        (None, Some(m)) => {
            raw.push_str("Error: ");
            raw.push_str(m);
        }
        (None, None) => raw.push_str("Error"),
    }
    cut_chars(&collapse_whitespace(&raw), TITLE_CHARS)
}

/// Every run of whitespace (newlines and control characters included) becomes one space.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(1024));
    for word in s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_follows_the_contract() {
        assert_eq!(
            title(Some("TypeError"), Some("x is undefined")),
            "TypeError: x is undefined"
        );
        assert_eq!(title(None, Some("boom")), "Error: boom");
        assert_eq!(title(Some("KeyError"), None), "KeyError");
        assert_eq!(title(Some("  "), Some("")), "Error");
        assert_eq!(title(Some("E"), Some("a\n\n  b\tc")), "E: a b c");
    }

    #[test]
    fn long_titles_are_cut_with_an_ellipsis() {
        let t = title(Some("RuntimeError"), Some(&"ж".repeat(500)));
        assert_eq!(t.chars().count(), 120);
        assert!(t.ends_with('…'));
        assert!(t.starts_with("RuntimeError: жжж"));
        let exact = "x".repeat(120);
        assert_eq!(title(None, Some(&exact[7..])).chars().count(), 120);
        assert!(!title(None, Some(&exact[7..])).ends_with('…'));
    }
}
