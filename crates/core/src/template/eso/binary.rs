//! Bytes that are not UTF-8, carried through a render.
//!
//! Go's template values are byte strings, so `{{ .pfx | b64dec | pkcs12key }}` hands the raw
//! archive from one function to the next. The engine's strings are UTF-8, so a function that
//! makes bytes which are not UTF-8 returns them as text (each stray byte becoming U+FFFD, as
//! before) and records the real bytes here under that text. A function that reads bytes
//! (`pkcs12*`, `rsaDecrypt`, `b64enc`) looks its argument up first, and [`restore`] puts the
//! bytes back into the rendered output. The record lives for one render on one thread.

use std::cell::RefCell;

/// The most values recorded in one render, and their most bytes in all: past these, values
/// are carried as text only (as without this module).
const MAX_VALUES: usize = 256;
const MAX_BYTES: usize = 8 * 1024 * 1024;

thread_local! {
    static HELD: RefCell<Vec<(String, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Clears the record when a render starts and again when it ends.
pub(in crate::template) struct Scope(());

impl Scope {
    /// Starts a render with an empty record.
    pub(in crate::template) fn start() -> Self {
        HELD.with(|h| h.borrow_mut().clear());
        Self(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.clear();
            h.shrink_to_fit();
        });
    }
}

/// Bytes as a template string; bytes that are not UTF-8 are recorded under their text.
pub(in crate::template) fn text_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let bytes = e.into_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            record(text, bytes)
        }
    }
}

/// Records `bytes` (not UTF-8) under `text`, the form a function chose for them (one U+FFFD
/// per stray byte, as Go's printers show them), and returns `text`.
pub(in crate::template) fn record(text: String, bytes: Vec<u8>) -> String {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        let used: usize = h.iter().map(|(_, b)| b.len()).sum();
        let known = h.iter().any(|(t, _)| *t == text);
        if !known && h.len() < MAX_VALUES && used + bytes.len() <= MAX_BYTES {
            h.push((text.clone(), bytes));
        }
    });
    text
}

/// The bytes a template string stands for: the recorded bytes, or the text's own.
pub(in crate::template) fn bytes_of(text: &str) -> Vec<u8> {
    HELD.with(|h| {
        h.borrow()
            .iter()
            .find(|(t, _)| t == text)
            .map(|(_, b)| b.clone())
    })
    .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// How many bytes a template string stands for (see [`bytes_of`]).
pub(in crate::template) fn byte_len(text: &str) -> usize {
    if !text.contains('\u{fffd}') {
        return text.len();
    }
    HELD.with(|h| {
        h.borrow()
            .iter()
            .find(|(t, _)| t == text)
            .map_or(text.len(), |(_, b)| b.len())
    })
}

/// The rendered output with every recorded value's text replaced by its bytes.
pub(in crate::template) fn restore(output: String) -> Vec<u8> {
    HELD.with(|h| {
        let h = h.borrow();
        if h.is_empty() || !output.contains('\u{fffd}') {
            return output.into_bytes();
        }
        let mut out = output.into_bytes();
        // longest first, so a value that contains another is restored whole
        let mut held: Vec<&(String, Vec<u8>)> = h.iter().collect();
        held.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        for (text, bytes) in held {
            out = replace_bytes(&out, text.as_bytes(), bytes);
        }
        out
    })
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_as_text_for_one_render() {
        let _scope = Scope::start();
        let raw = vec![0x30, 0x82, 0xff, 0x00, b'a'];
        let text = text_of(raw.clone());
        assert!(text.contains('\u{fffd}'));
        assert_eq!(bytes_of(&text), raw);
        assert_eq!(bytes_of("plain"), b"plain");
        assert_eq!(
            restore(format!("<{text}>")),
            [b"<".as_slice(), &raw, b">"].concat()
        );
        drop(_scope);
        assert_eq!(bytes_of(&text), text.as_bytes());
    }
}
