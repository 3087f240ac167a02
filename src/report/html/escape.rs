//! HTML escaping for every string that came from the user's data or command line: file
//! paths, column and class names, ids, finding messages. Text inside the plots is escaped by
//! plotters' SVG backend itself, so plot titles are passed to it unescaped.

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references: safe both as
/// element content and inside a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_become_references_and_the_rest_is_kept() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("größe/ünïcode 7"), "größe/ünïcode 7");
        // Escaping twice is visible: the function must be applied exactly once.
        assert_eq!(escape(&escape("&")), "&amp;amp;");
        assert_eq!(escape(""), "");
    }
}
