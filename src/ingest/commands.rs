//! Command messages (AMF0 `connect`, `publish`, ...) as typed values, read from what the
//! crate's `MessageParser` returns. Missing or mistyped arguments become `None`, never a panic:
//! the session decides what a missing stream name means.

use xflv::amf0::Amf0ValueType;

use super::error::ProtocolError;

/// A command from the peer, with the arguments ingest uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect {
        transaction_id: f64,
        /// The application (`live` in `rtmp://host/live`), query string removed.
        app: Option<String>,
        tc_url: Option<String>,
        flash_ver: Option<String>,
        /// Echoed in the answer (0 = AMF0).
        object_encoding: f64,
    },
    ReleaseStream {
        transaction_id: f64,
    },
    FcPublish {
        transaction_id: f64,
    },
    CreateStream {
        transaction_id: f64,
    },
    Publish {
        transaction_id: f64,
        /// The stream key, query string removed; `None` when absent or not a string.
        stream_name: Option<String>,
        /// `live`, `record` or `append`.
        publish_type: Option<String>,
    },
    FcUnpublish {
        transaction_id: f64,
    },
    DeleteStream {
        transaction_id: f64,
    },
    CloseStream {
        transaction_id: f64,
    },
    Play {
        transaction_id: f64,
        stream_name: Option<String>,
    },
    /// Anything else (`_checkbw`, `getStreamLength`, ...): ignored.
    Other {
        name: String,
        transaction_id: f64,
    },
}

impl Command {
    /// Types a parsed command: its name, transaction id, command object and further arguments.
    pub fn from_amf(
        name: &Amf0ValueType,
        transaction_id: &Amf0ValueType,
        command_object: &Amf0ValueType,
        args: &[Amf0ValueType],
    ) -> Result<Command, ProtocolError> {
        let name = text(name)
            .ok_or_else(|| ProtocolError::BadCommand("command name is not a string".into()))?;
        let transaction_id = match transaction_id {
            Amf0ValueType::Number(n) => *n,
            _ => 0.0,
        };
        let arg_text = |i: usize| args.get(i).and_then(text).map(str::to_string);
        Ok(match name {
            "connect" => {
                let field = |key: &str| match command_object {
                    Amf0ValueType::Object(map) | Amf0ValueType::EcmaArray(map) => map.get(key),
                    _ => None,
                };
                let field_text = |key: &str| field(key).and_then(text).map(str::to_string);
                Command::Connect {
                    transaction_id,
                    app: field_text("app").map(|app| without_query(&app)),
                    tc_url: field_text("tcUrl"),
                    flash_ver: field_text("flashVer"),
                    object_encoding: match field("objectEncoding") {
                        Some(Amf0ValueType::Number(n)) if n.is_finite() => *n,
                        _ => 0.0,
                    },
                }
            }
            "releaseStream" => Command::ReleaseStream { transaction_id },
            "FCPublish" => Command::FcPublish { transaction_id },
            "createStream" => Command::CreateStream { transaction_id },
            "publish" => Command::Publish {
                transaction_id,
                stream_name: arg_text(0).map(|name| without_query(&name)),
                publish_type: arg_text(1),
            },
            "FCUnpublish" => Command::FcUnpublish { transaction_id },
            "deleteStream" => Command::DeleteStream { transaction_id },
            "closeStream" => Command::CloseStream { transaction_id },
            "play" => Command::Play {
                transaction_id,
                stream_name: arg_text(0),
            },
            other => Command::Other {
                name: truncated(other, 64),
                transaction_id,
            },
        })
    }
}

/// The text of a string value (short or long form).
fn text(value: &Amf0ValueType) -> Option<&str> {
    match value {
        Amf0ValueType::UTF8String(s) | Amf0ValueType::LongUTF8String(s) => Some(s),
        _ => None,
    }
}

/// `live?token=1` -> `live`; a trailing `/` is dropped too (`rtmp://host/live/` gives `live/`).
fn without_query(name: &str) -> String {
    let name = name.split('?').next().unwrap_or_default();
    name.strip_suffix('/').unwrap_or(name).to_string()
}

/// At most `max` characters, for names that end up in logs.
fn truncated(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Amf0ValueType {
        Amf0ValueType::UTF8String(v.to_string())
    }

    fn object(pairs: &[(&str, Amf0ValueType)]) -> Amf0ValueType {
        Amf0ValueType::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn connect_reads_app_and_encoding() {
        let obj = object(&[
            ("app", s("live?token=x")),
            ("flashVer", s("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("tcUrl", s("rtmp://127.0.0.1/live")),
            ("objectEncoding", Amf0ValueType::Number(3.0)),
        ]);
        let cmd = Command::from_amf(&s("connect"), &Amf0ValueType::Number(1.0), &obj, &[]).unwrap();
        assert_eq!(
            cmd,
            Command::Connect {
                transaction_id: 1.0,
                app: Some("live".into()),
                tc_url: Some("rtmp://127.0.0.1/live".into()),
                flash_ver: Some("FMLE/3.0 (compatible; FMSc/1.0)".into()),
                object_encoding: 3.0,
            }
        );
        // A connect without an object has no app (refused by the session, not a panic).
        let cmd = Command::from_amf(
            &s("connect"),
            &Amf0ValueType::Null,
            &Amf0ValueType::Null,
            &[],
        );
        assert!(
            matches!(cmd, Ok(Command::Connect { app: None, transaction_id, .. }) if transaction_id == 0.0)
        );
    }

    #[test]
    fn publish_and_play_with_missing_names() {
        let null = Amf0ValueType::Null;
        let n = Amf0ValueType::Number(5.0);
        assert_eq!(
            Command::from_amf(&s("publish"), &n, &null, &[s("key?x=1"), s("live")]).unwrap(),
            Command::Publish {
                transaction_id: 5.0,
                stream_name: Some("key".into()),
                publish_type: Some("live".into())
            }
        );
        assert_eq!(
            Command::from_amf(&s("publish"), &n, &null, &[]).unwrap(),
            Command::Publish {
                transaction_id: 5.0,
                stream_name: None,
                publish_type: None
            }
        );
        assert_eq!(
            Command::from_amf(&s("play"), &n, &null, &[]).unwrap(),
            Command::Play {
                transaction_id: 5.0,
                stream_name: None
            }
        );
        assert!(Command::from_amf(&n, &n, &null, &[]).is_err());
    }
}
