//! The one check of a media type that a client names for inline content (an image's
//! `media_type`/`mimeType`, the type inside a `data:` URL, a document's type).
//!
//! A media type is carried from one format into another: into a `data:<type>;base64,…`
//! URL for OpenAI, into a JSON field for Anthropic and Gemini. A type holding `,` or `;`
//! would end the URL's header early (`data:image/png,;base64,…`, which OpenAI refuses), so
//! every decoder that accepts one checks it here, before it reaches the canonical model.
//!
//! Accepted: `type/subtype` as RFC 6838 §4.2 restricts them (a letter or digit, then up to
//! 126 of letters, digits and ``!#$&-^_.+``), with no parameters, no spaces, no other
//! characters. Letters are kept as written.

/// The longest media type accepted: RFC 6838 caps each of type and subtype at 127
/// characters.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// `Ok(())` when `value` is a bare `type/subtype`; otherwise the reason, for a 400 naming
/// the field.
pub fn check_media_type(value: &str) -> Result<(), String> {
    if value.len() > MAX_MEDIA_TYPE_LEN {
        return Err(format!(
            "Invalid media type: longer than {MAX_MEDIA_TYPE_LEN} characters."
        ));
    }
    let valid = value
        .split_once('/')
        .is_some_and(|(kind, subtype)| is_restricted_name(kind) && is_restricted_name(subtype));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Invalid media type {:?}: expected 'type/subtype' (such as 'image/png') without parameters.",
            shorten(value)
        ))
    }
}

/// Whether `media_type` is an image type (`image/…`, any case): what every format's image
/// slot takes and reads back as an image.
pub fn is_image(media_type: &str) -> bool {
    media_type
        .get(..6)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("image/"))
}

/// RFC 6838 `restricted-name`: a letter or digit, then up to 126 of letters, digits and
/// `!#$&-^_.+`.
fn is_restricted_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && bytes.len() <= 127
        && bytes[1..].iter().all(|&byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                )
        })
}

/// At most 64 characters of a rejected value for the error text.
fn shorten(value: &str) -> String {
    if value.chars().count() <= 64 {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(64).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_types_are_accepted() {
        for value in [
            "image/png",
            "image/jpeg",
            "image/svg+xml",
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "text/plain",
            "IMAGE/PNG",
        ] {
            assert_eq!(check_media_type(value), Ok(()), "{value}");
        }
    }

    #[test]
    fn separators_parameters_and_junk_are_refused() {
        for value in [
            "",
            "image",
            "image/",
            "/png",
            "image/png,",
            "image/png;base64",
            "image/png; charset=utf-8",
            "image/png ",
            " image/png",
            "image/png/x",
            "image/p\"ng",
            "image/-png",
            "image/pñg",
            "image/png\n",
        ] {
            assert!(check_media_type(value).is_err(), "{value:?} was accepted");
        }
    }

    #[test]
    fn length_is_capped_and_the_error_text_is_short() {
        let long = format!("image/{}", "a".repeat(300));
        let message = check_media_type(&long).unwrap_err();
        assert!(message.len() < 120, "{message}");
        let subtype_too_long = format!("image/{}", "a".repeat(128));
        assert!(check_media_type(&subtype_too_long).is_err());
        let longest = format!("image/{}", "a".repeat(127));
        assert_eq!(check_media_type(&longest), Ok(()));
        let junk = format!("image/{}", ",".repeat(200));
        assert!(check_media_type(&junk).unwrap_err().chars().count() < 160);
    }
}
