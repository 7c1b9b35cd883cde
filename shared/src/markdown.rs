//! Escaping untrusted text into Markdown.
//!
//! Every value that came from an event is backslash-escaped character by character: CommonMark lets
//! any ASCII punctuation be escaped, and an escaped character is always literal text. Line breaks and
//! other control characters become spaces, so a value stays inside its paragraph or list item and
//! can never open a heading, list, link, HTML tag or code fence.

/// Inline-safe Markdown for untrusted text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    escape_into(text, &mut out);
    out
}

pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
            out.push(c);
        } else if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_literal() {
        assert_eq!(escape("<script>"), "\\<script\\>");
        assert_eq!(escape("```\n# x"), "\\`\\`\\`  \\# x");
        assert_eq!(escape("[a](javascript:b)"), "\\[a\\]\\(javascript\\:b\\)");
        assert_eq!(escape("plain words"), "plain words");
    }
}
