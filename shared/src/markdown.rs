//! Escaping untrusted text into Markdown.
//!
//! Every value that came from an event is backslash-escaped character by character: CommonMark lets
//! any ASCII punctuation be escaped, and an escaped character is always literal text. Runs of
//! whitespace and control characters (line breaks included) become one space and the ends are
//! trimmed, so a value stays inside its paragraph or list item and can never open a heading, list,
//! indented code block, link, HTML tag or code fence.

/// Inline-safe Markdown for untrusted text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    escape_into(text, &mut out);
    out
}

pub fn escape_into(text: &str, out: &mut String) {
    let mut pending_space = false;
    let start = out.len();
    for c in text.chars() {
        if is_blank(c) {
            pending_space = out.len() > start;
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whitespace and control characters, which escaping folds into single spaces.
pub fn is_blank(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_literal() {
        assert_eq!(escape("<script>"), "\\<script\\>");
        assert_eq!(escape("```\n# x"), "\\`\\`\\` \\# x");
        assert_eq!(escape("    code\t\tblock  "), "code block");
        assert_eq!(escape("[a](javascript:b)"), "\\[a\\]\\(javascript\\:b\\)");
        assert_eq!(escape("plain words"), "plain words");
    }
}
