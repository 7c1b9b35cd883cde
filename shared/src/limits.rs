//! Stored-size limits (DESIGN.md §4) and the cutting helpers that keep text valid UTF-8.

/// A stored exception message is cut at this many bytes.
pub const MESSAGE_BYTES: usize = 4 * 1024;
/// Frames kept per exception (the ones closest to the throw).
pub const FRAMES_PER_EXCEPTION: usize = 30;
/// A rendered PRD is cut at this many bytes.
pub const PRD_BYTES: usize = 32 * 1024;
/// Titles are at most this many Unicode scalar values, the `…` included.
pub const TITLE_CHARS: usize = 120;
/// Longest fingerprint accepted from PostHog.
pub const FINGERPRINT_BYTES: usize = 512;
/// Exceptions kept from one `$exception_list` (a chain deeper than this is cut at the innermost end).
pub const EXCEPTIONS_PER_EVENT: usize = 10;
/// Context values (browser, OS, URL …) are cut at this many bytes.
pub const CONTEXT_BYTES: usize = 2 * 1024;

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn cut_to_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to `max` bytes, with `…` marking the cut (the marker counts towards `max`).
pub fn cut_with_marker(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut out = cut_to_bytes(s, max.saturating_sub('…'.len_utf8())).to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_never_splits_a_character() {
        let s = "ab€cd";
        assert_eq!(cut_to_bytes(s, 3), "ab");
        assert_eq!(cut_to_bytes(s, 5), "ab€");
        assert_eq!(cut_to_bytes(s, 100), s);
        let cut = cut_with_marker(&"€".repeat(2000), MESSAGE_BYTES);
        assert!(cut.len() <= MESSAGE_BYTES);
        assert!(cut.ends_with('…'));
    }
}
