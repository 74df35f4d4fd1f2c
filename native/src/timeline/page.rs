//! The HTML around the data: escaping for each place a report string can land, and the inline
//! script and styles.

use crate::error::Result;

const SCRIPT: &str = include_str!("timeline.js");
const STYLE: &str = include_str!("timeline.css");

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Makes JSON safe inside a `<script>` element: `<`, `>` and `&` only occur within JSON strings,
/// where their `\u` escapes mean the same, so no `</script>` or `<!--` can end the element early.
/// U+2028 and U+2029 are escaped too, for engines that treat them as line ends.
pub(super) fn escape_script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for ch in json.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(ch),
        }
    }
    out
}

/// The whole page. `notes` are plain-text lines shown under the title without script;
/// `sites_html` is markup whose report strings the caller escaped, shown below the charts.
pub(super) fn html(title: &str, notes: &[String], sites_html: &str, data_json: &str) -> Result<String> {
    let title = escape_html(title);
    let data = escape_script_json(data_json);
    let mut notes_html = String::new();
    for n in notes {
        notes_html.push_str("<p class=\"note warn\">");
        notes_html.push_str(&escape_html(n));
        notes_html.push_str("</p>\n");
    }
    Ok(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="offheap-doctor">
<title>{title}</title>
<style>
{STYLE}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p id="od-range" class="note"></p>
{notes_html}<div id="od-summary"></div>
</header>
<main>
<section id="od-charts"><noscript><p>The charts need JavaScript.</p></noscript></section>
<aside id="od-findings"></aside>
</main>
<section id="od-sites">{sites_html}</section>
<div id="od-tip" hidden></div>
<script type="application/json" id="od-data">{data}</script>
<script>
{SCRIPT}</script>
</body>
</html>
"#
    ))
}
