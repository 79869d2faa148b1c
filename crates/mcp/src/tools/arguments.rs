//! What the tools' arguments share: a URL, parsed and checked before anything is sent.

use url::Url;

/// Parses and checks a URL argument.
pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("url {text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url {text:?}: only http:// and https:// URLs can be fetched"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {text:?} names no host"));
    }
    Ok(url)
}
