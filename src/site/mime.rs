//! File name → `Content-Type`.
//!
//! Where this sits in the loop: `files.rs` asks for the type of each file it is about to
//! serve. No I/O here.
//!
//! # Design notes
//! mime_guess knows most extensions; a small table corrects it where browsers need a specific
//! answer (`.mjs` must be JavaScript for module scripts to run; source maps are JSON), and
//! `--mime EXT=TYPE` overrides both. Text types get `; charset=utf-8`, because a browser
//! guessing the charset of a UTF-8 file as Windows-1252 garbles it; unknown types are
//! `application/octet-stream`, the RFC 9110 §8.3 default.

/// Where mime_guess's answer is not what browsers need.
const CORRECTIONS: [(&str, &str); 7] = [
    ("mjs", "text/javascript"),
    ("js", "text/javascript"),
    ("map", "application/json"),
    ("wasm", "application/wasm"),
    ("webmanifest", "application/manifest+json"),
    ("avif", "image/avif"),
    ("woff2", "font/woff2"),
];

/// The `Content-Type` for a file name, given the `--mime` overrides (lowercase extensions).
pub fn content_type(name: &str, overrides: &[(String, String)]) -> String {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    let matches = |ext: &str| ext.eq_ignore_ascii_case(extension);
    let overridden = overrides
        .iter()
        .find(|(ext, _)| matches(ext))
        .map(|(_, mime)| mime.as_str());
    let corrected = CORRECTIONS
        .iter()
        .find(|(ext, _)| matches(ext))
        .map(|(_, mime)| *mime);
    let guess = overridden
        .or(corrected)
        .or_else(|| mime_guess::from_ext(extension).first_raw())
        .unwrap_or("application/octet-stream");
    let textual = guess.starts_with("text/") || guess == "application/javascript";
    if textual && !guess.contains("charset") {
        format!("{guess}; charset=utf-8")
    } else {
        guess.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_browsers_need() {
        let table = [
            ("index.html", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("app.js.map", "application/json"),
            ("data.json", "application/json"),
            ("m.wasm", "application/wasm"),
            ("logo.svg", "image/svg+xml"),
            ("photo.webp", "image/webp"),
            ("photo.avif", "image/avif"),
            ("font.woff2", "font/woff2"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("PHOTO.PNG", "image/png"),
            ("Makefile", "application/octet-stream"),
            ("a.unknownext", "application/octet-stream"),
            ("", "application/octet-stream"),
        ];
        for (name, expected) in table {
            assert_eq!(content_type(name, &[]), expected, "{name}");
        }
    }

    #[test]
    fn overrides_win() {
        let overrides = vec![
            ("glb".to_string(), "model/gltf-binary".to_string()),
            ("txt".to_string(), "text/markdown".to_string()),
        ];
        assert_eq!(content_type("m.GLB", &overrides), "model/gltf-binary");
        assert_eq!(
            content_type("a.txt", &overrides),
            "text/markdown; charset=utf-8"
        );
    }
}
