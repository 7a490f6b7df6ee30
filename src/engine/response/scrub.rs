//! Keeping secrets out of the partner text that errors quote.
//!
//! A partner may echo what it was sent: raw, JSON-escaped (`S3\/cr+t`, `\u0053`),
//! form- or percent-encoded (`S3%2Fcr%2Bt`, `%2f`, `+` for a space), or inside an echoed
//! `Authorization: Basic` header. Two steps keep every one of those out:
//!
//! 1. the usual spellings of each secret are replaced with `[redacted]`, so a common echo
//!    still leaves a readable message;
//! 2. the result is decoded every way a partner may have encoded it (JSON escapes,
//!    percent-decoding with and without `+` as a space, up to three layers deep) and each
//!    view is searched for every secret, and for the base64 of every secret at any
//!    alignment. Anything still found means the text is not quoted at all.
//!
//! A secret shorter than [`MIN_SCRUB_LEN`] cannot be told apart from ordinary text (its
//! base64 is a couple of characters): with one among the secrets, no partner text is
//! quoted.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Longest partner message or body excerpt kept in an error.
pub(super) const EXCERPT_CHARS: usize = 200;

/// Shortest secret that can be scrubbed from partner text reliably.
pub(super) const MIN_SCRUB_LEN: usize = 4;

/// What replaces a secret in quoted text.
const REDACTED: &str = "[redacted]";

/// Why a partner text was not quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Withheld {
    /// It holds a secret in a form that could not be replaced.
    HoldsSecret,
    /// A secret is too short to be scrubbed reliably.
    ShortSecret,
}

impl Withheld {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Withheld::HoldsSecret => "it echoes a credential",
            Withheld::ShortSecret => "a credential is too short to scrub reliably",
        }
    }
}

/// `text` (control characters dropped, at most [`EXCERPT_CHARS`] characters, `…` when cut)
/// with every secret replaced, or why it cannot be quoted.
pub(super) fn quote(text: &str, secrets: &[&SecretString]) -> Result<String, Withheld> {
    // Each secret also without its surrounding whitespace: partner texts are trimmed before
    // they are quoted, so a secret with an edge space can be echoed without it.
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.expose_secret())
        .flat_map(|s| [s, s.trim()])
        .filter(|s| !s.is_empty())
        .collect();
    secrets.dedup();
    if secrets.iter().any(|s| s.len() < MIN_SCRUB_LEN) {
        return Err(Withheld::ShortSecret);
    }
    // Only the start is quoted; the window is wide enough that any encoding of a secret
    // that starts inside the quoted part ends inside the window (a byte takes at most 6
    // characters as `\u00XX`, 9 as a thrice percent-encoded `%2525XX`).
    let longest = secrets.iter().map(|s| s.len()).max().unwrap_or(0);
    let window_chars = EXCERPT_CHARS + 9 * longest + 16;
    let window: String = text.chars().take(window_chars).collect();
    let mut out = replace_spellings(&window, &secrets);
    check(&out, &secrets)?;
    out.retain(|c| !c.is_control());
    check(&out, &secrets)?;
    let cut = out.chars().count() > EXCERPT_CHARS || text.chars().count() > window_chars;
    if cut {
        out = out.chars().take(EXCERPT_CHARS).collect();
        out.push('…');
    }
    Ok(out)
}

/// Replaces the common spellings of each secret, longest secret first.
fn replace_spellings(text: &str, secrets: &[&str]) -> String {
    let mut sorted = secrets.to_vec();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in sorted {
        for spelling in spellings(secret) {
            if out.contains(&spelling) {
                out = out.replace(&spelling, REDACTED);
            }
        }
    }
    out
}

/// The raw secret and the ways partners commonly echo it, longest first.
fn spellings(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_owned();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let b64_url = base64::engine::general_purpose::URL_SAFE.encode(secret);
    let mut all = vec![secret.to_owned(), json];
    for encoded in [form, percent] {
        all.push(lower_hex(&encoded));
        all.push(encoded);
    }
    for encoded in [b64, b64_url] {
        all.push(encoded.trim_end_matches('=').to_owned());
        all.push(encoded);
    }
    // The same, with `/` escaped as JSON allows (PHP's `json_encode` does).
    let escaped: Vec<String> = all.iter().map(|s| s.replace('/', "\\/")).collect();
    all.extend(escaped);
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all.dedup();
    all.retain(|s| !s.is_empty());
    all
}

/// `%2F` → `%2f`.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            hex_left = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

/// Fails when any decoded view of `text` still holds a secret (or its base64).
fn check(text: &str, secrets: &[&str]) -> Result<(), Withheld> {
    let needles: Vec<String> = secrets
        .iter()
        .flat_map(|s| {
            let mut needles = vec![(*s).to_owned()];
            let visible: String = s.chars().filter(|c| !c.is_control()).collect();
            if visible.len() >= MIN_SCRUB_LEN {
                needles.push(visible);
            }
            needles.extend(base64_cores(s));
            // HTTP Basic form-encodes the secret before base64 (RFC 6749 §2.3.1).
            let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if form != *s {
                needles.extend(base64_cores(&form));
            }
            needles
        })
        .collect();
    if views(text)
        .iter()
        .any(|view| needles.iter().any(|n| view.contains(n.as_str())))
    {
        return Err(Withheld::HoldsSecret);
    }
    Ok(())
}

/// `text` and what it decodes to through JSON escapes and percent-encoding (with and without
/// `+` for a space), up to three layers deep.
fn views(text: &str) -> Vec<String> {
    let mut all = vec![text.to_owned()];
    let mut frontier = all.clone();
    for _ in 0..3 {
        let mut next = Vec::new();
        for view in &frontier {
            for decoded in [
                json_unescape(view),
                percent_decode(view, true),
                percent_decode(view, false),
            ] {
                if !all.contains(&decoded) {
                    all.push(decoded.clone());
                    next.push(decoded);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    all
}

/// The base64 characters (standard and URL-safe alphabets) that encode only bytes of
/// `secret`, for each of the three positions it can take in a longer encoded string (as in
/// `Basic base64(id:secret)`). Cores shorter than 4 characters are left out: they match
/// ordinary text.
fn base64_cores(secret: &str) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let n = secret.len();
    let mut cores = Vec::new();
    for offset in 0..3 {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(secret.as_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let encoded = engine.encode(&bytes);
        // Character i carries bits 6i..6i+6; keep those entirely inside the secret's bits.
        let first = (8 * offset).div_ceil(6);
        let last = 8 * (offset + n) / 6;
        if last >= first + 4 {
            let core = &encoded[first..last];
            cores.push(core.to_owned());
            cores.push(core.replace('+', "-").replace('/', "_"));
        }
    }
    cores.dedup();
    cores
}

/// Decodes JSON string escapes (`\"`, `\\`, `\/`, `\n`, `\u00e9`, surrogate pairs); anything
/// that is not a valid escape is kept as it is.
fn json_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let simple = match rest.as_bytes().get(1) {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &rest[2..];
            continue;
        }
        match unicode_escape(rest) {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('\\');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `\uXXXX` (or a `\uD8XX\uDCXX` pair) at the start of `text`: the character and the bytes
/// it took.
fn unicode_escape(text: &str) -> Option<(char, usize)> {
    let unit = |s: &str| -> Option<u32> {
        let hex = s.strip_prefix("\\u")?.get(..4)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok()
    };
    let high = unit(text)?;
    if (0xD800..0xDC00).contains(&high) {
        if let Some(low) = text.get(6..).and_then(unit) {
            if (0xDC00..0xE000).contains(&low) {
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(c).map(|c| (c, 12));
            }
        }
        return Some(('\u{FFFD}', 6));
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 6))
}

/// Decodes `%XX` (either case); with `plus_is_space`, `+` becomes a space as in a form.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_is_space => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_undo_json_and_percent_encoding() {
        assert_eq!(
            json_unescape(r#"S3\/cr+t \"q\" \\ \u00e9 \ud83d\ude00 \x"#),
            "S3/cr+t \"q\" \\ é 😀 \\x"
        );
        assert_eq!(percent_decode("S3%2Fcr%2bt+x%zz%4", true), "S3/cr+t x%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
