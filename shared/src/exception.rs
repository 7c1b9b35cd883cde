//! The exceptions of one `$exception` event, as SDKs send them (raw frames) and as PostHog's cymbal
//! rewrites them (resolved frames). One struct reads both shapes: every field is optional.

use crate::lenient;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Exception {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub module: Option<String>,
    #[serde(default)]
    pub mechanism: Option<Mechanism>,
    #[serde(default)]
    pub stacktrace: Option<Stacktrace>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mechanism {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub handled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub synthetic: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stacktrace {
    #[serde(default)]
    pub frames: Option<Vec<Frame>>,
}

/// A stack frame, oldest first within its list (the throwing frame is the last one).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Frame {
    /// Raw SDK frames.
    #[serde(default, deserialize_with = "lenient::string")]
    pub function: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub abs_path: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub lineno: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub colno: Option<String>,
    /// Resolved frames (cymbal).
    #[serde(default, deserialize_with = "lenient::string")]
    pub resolved_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mangled_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub line: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub in_app: Option<bool>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Exception {
    pub fn kind(&self) -> Option<&str> {
        non_empty(&self.kind)
    }

    pub fn message(&self) -> Option<&str> {
        non_empty(&self.value)
    }

    pub fn frames(&self) -> &[Frame] {
        self.stacktrace
            .as_ref()
            .and_then(|s| s.frames.as_deref())
            .unwrap_or(&[])
    }

    /// The in-app frames, or every frame when none is marked in-app (DESIGN.md §4).
    pub fn significant_frames(&self) -> impl Iterator<Item = &Frame> {
        let frames = self.frames();
        let any_in_app = frames.iter().any(Frame::is_in_app);
        frames.iter().filter(move |f| !any_in_app || f.is_in_app())
    }

    /// True only when the SDK said so explicitly (PostHog decides the same way).
    pub fn handled(&self) -> Option<bool> {
        self.mechanism.as_ref().and_then(|m| m.handled)
    }

    pub fn mechanism_kind(&self) -> Option<&str> {
        self.mechanism.as_ref().and_then(|m| non_empty(&m.kind))
    }
}

impl Frame {
    pub fn is_in_app(&self) -> bool {
        self.in_app == Some(true)
    }

    /// The function name, resolved when PostHog resolved it.
    pub fn function(&self) -> Option<&str> {
        non_empty(&self.resolved_name)
            .or_else(|| non_empty(&self.function))
            .or_else(|| non_empty(&self.mangled_name))
    }

    /// The file as the SDK named it (raw) or as PostHog resolved it.
    pub fn file(&self) -> Option<&str> {
        non_empty(&self.source)
            .or_else(|| non_empty(&self.filename))
            .or_else(|| non_empty(&self.abs_path))
    }

    /// The file without query string or fragment: those change between deploys and requests.
    pub fn file_for_identity(&self) -> Option<&str> {
        self.file().map(|f| {
            let end = f.find(['?', '#']).unwrap_or(f.len());
            &f[..end]
        })
    }

    pub fn line(&self) -> Option<&str> {
        non_empty(&self.line).or_else(|| non_empty(&self.lineno))
    }

    pub fn column(&self) -> Option<&str> {
        non_empty(&self.colno)
    }
}
