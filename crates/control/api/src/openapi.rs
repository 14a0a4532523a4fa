//! The OpenAPI 3.1 document served at `/api/openapi.json`, written by hand.
//!
//! Kept next to the route table: a test checks that every route the router serves is
//! documented (and nothing else), and that happy-path responses match their schemas.
//! Schemas are strict (`additionalProperties: false`, every property listed) so that a
//! schema-driven fuzzer generates requests the handlers accept.

use serde_json::{json, Value};

pub(crate) fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

pub(crate) fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub(crate) fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

pub(crate) fn resp(desc: &str, schema: Value) -> Value {
    json!({ "description": desc, "content": json_content(schema) })
}

pub(crate) fn error_resp(desc: &str) -> Value {
    json!({ "description": desc, "content": json_content(r("Error")) })
}

pub(crate) fn body(schema: Value) -> Value {
    json!({ "required": true, "content": json_content(schema) })
}

/// Free text as the control plane accepts it (`validate::display_text`): no control
/// character (C0, DEL or C1: Rust's `char::is_control`), not only whitespace.
pub(crate) const TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A [`TEXT_PATTERN`] string of at most `max` bytes (the limit is checked on UTF-8
/// bytes, so `maxLength` is exact for ASCII only).
pub(crate) fn text(max: usize) -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": max, "pattern": TEXT_PATTERN,
        "description": format!("At most {max} bytes of UTF-8; no control characters; not blank.")
    })
}

pub(crate) fn id_param(what: &str) -> Value {
    json!([{
        "name": "id", "in": "path", "required": true,
        "description": format!("The {what}'s id."),
        "schema": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" }
    }])
}

/// Standard error responses for an authenticated operation.
pub(crate) fn op(summary: &str, ok: (&str, Value), extra_errors: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.to_owned(), ok.1);
    responses.insert(
        "400".into(),
        error_resp("Invalid input (the field is named)."),
    );
    responses.insert("401".into(), error_resp("Not authenticated."));
    responses.insert(
        "403".into(),
        error_resp("The caller's role may not do this."),
    );
    for code in extra_errors {
        let desc = match *code {
            "404" => "Not found (or another organisation's).",
            "409" => "A unique value is taken.",
            "413" => "Body over 1 MiB.",
            "415" => "Body is not JSON.",
            "429" => "Too many failed logins; see Retry-After.",
            _ => "Error.",
        };
        responses.insert((*code).to_owned(), error_resp(desc));
    }
    json!({
        "summary": summary,
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": responses,
    })
}

/// OpenAPI links from a response whose body has an `id` to operations on that id (so
/// that clients and schema-driven testers can follow them).
pub(crate) fn id_links(mut response: Value, targets: &[(&str, &str, &str)]) -> Value {
    let mut links = serde_json::Map::new();
    for (name, path, method) in targets {
        let pointer = path.replace('~', "~0").replace('/', "~1");
        links.insert(
            (*name).to_owned(),
            json!({
                "operationRef": format!("#/paths/{pointer}/{method}"),
                "parameters": { "id": "$response.body#/id" }
            }),
        );
    }
    response["links"] = Value::Object(links);
    response
}

pub(crate) fn with(mut op: Value, key: &str, v: Value) -> Value {
    op[key] = v;
    op
}

pub(crate) fn no_content(desc: &str) -> (&'static str, Value) {
    ("204", json!({ "description": desc }))
}

fn schemas() -> Value {
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let nts = json!({ "type": ["integer", "null"], "format": "int64" });
    let str_ = json!({ "type": "string" });
    // validate::srt_passphrase: libsrt's 10-79 bytes, printable ASCII.
    let srt_passphrase = json!({
        "type": "string", "minLength": 10, "maxLength": 79, "pattern": "^[ -~]*$",
        "description": "AES passphrase every SRT caller of the channel (publisher or player) must use: 10 to 79 printable ASCII characters. Write-only."
    });
    let srt_pbkeylen = json!({ "enum": [16, 24, 32], "description": "AES key length in bytes; absent: the node's (srt.pbkeylen)." });
    json!({
        "Error": {
            "type": "object", "additionalProperties": false, "required": ["error"],
            "properties": { "error": {
                "type": "object", "additionalProperties": false,
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string" },
                    "message": { "type": "string" },
                    "field": { "type": "string" }
                }
            }}
        },
        "Principal": {
            "type": "object", "additionalProperties": false,
            "required": ["user_id", "org_id", "role", "system"],
            "properties": {
                "user_id": str_, "org_id": str_,
                "role": { "type": "string", "enum": ["admin", "broadcaster", "viewer"] },
                "system": { "type": "boolean" }
            }
        },
        "Login": {
            "type": "object", "additionalProperties": false, "required": ["email", "password"],
            "properties": {
                "email": { "type": "string", "maxLength": 254 },
                "password": { "type": "string", "maxLength": 1024 }
            }
        },
        "NewApiToken": {
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {
                "name": text(100),
                "expires_at": { "type": ["integer", "null"], "format": "int64", "minimum": 1, "maximum": i64::MAX, "description": "Unix time, ms, in the future; absent or null: never expires." }
            }
        },
        "ApiToken": {
            "type": "object", "additionalProperties": false,
            "required": ["id", "user_id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"],
            "properties": {
                "id": str_, "user_id": str_, "name": str_,
                "prefix": { "type": "string", "description": "First characters of the secret, for recognition." },
                "created_at": ts, "expires_at": nts, "last_used_at": nts, "revoked_at": nts
            }
        },
        "ApiTokenList": list_of("ApiToken"),
        "Visibility": { "type": "string", "enum": ["public", "unlisted", "private"] },
        "LatencyMode": { "type": "string", "enum": ["standard", "low", "realtime", "p2p"], "description": "standard: HLS; low: LL-HLS; realtime: WebRTC (WHEP) for viewers that can, LL-HLS for the rest; p2p: viewers a few segments behind live share whole segments with each other over WebRTC data channels (the edge backs every one up), LL-HLS for viewers that cannot." },
        "Channel": {
            "type": "object", "additionalProperties": false,
            "required": ["id", "org_id", "name", "title", "visibility", "latency_mode", "ladder", "recording", "dvr_window_secs", "srt_encrypted", "srt_pbkeylen", "created_at", "updated_at"],
            "properties": {
                "id": str_, "org_id": str_, "name": str_, "title": str_,
                "visibility": r("Visibility"), "latency_mode": r("LatencyMode"),
                "ladder": str_, "recording": { "type": "boolean" },
                "dvr_window_secs": { "type": "integer", "format": "int64" },
                "srt_encrypted": { "type": "boolean", "description": "Whether the channel has its own SRT passphrase (which is never returned)." },
                "srt_pbkeylen": { "enum": [16, 24, 32, null], "description": "AES key length of the channel's passphrase, in bytes; null: the node's." },
                "created_at": ts, "updated_at": ts
            }
        },
        "NewChannel": {
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$", "description": "URL name: A-Z a-z 0-9 _ -." },
                "title": {
                    "type": "string", "maxLength": 200,
                    "pattern": format!("^$|{TEXT_PATTERN}"),
                    "description": "Display title (at most 200 bytes of UTF-8, no control characters); empty or absent: the name."
                },
                "visibility": r("Visibility"), "latency_mode": r("LatencyMode"),
                "ladder": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_,-]+$", "description": "`default` (the node's transcoding ladder; absent on create: this), `source` (no transcoding), or rung names of the node's ladder such as `720p,360p`. Read when a publish begins." },
                "recording": { "type": "boolean" },
                "dvr_window_secs": { "type": "integer", "minimum": 0, "maximum": 604800 },
                "srt_passphrase": srt_passphrase.clone(),
                "srt_pbkeylen": srt_pbkeylen.clone()
            },
            "dependentRequired": { "srt_pbkeylen": ["srt_passphrase"] }
        },
        "ChannelPatch": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "title": text(200),
                "visibility": r("Visibility"), "latency_mode": r("LatencyMode"),
                "ladder": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_,-]+$", "description": "`default` (the node's transcoding ladder; absent on create: this), `source` (no transcoding), or rung names of the node's ladder such as `720p,360p`. Read when a publish begins." },
                "recording": { "type": "boolean" },
                "dvr_window_secs": { "type": "integer", "minimum": 0, "maximum": 604800 },
                "srt_passphrase": { "oneOf": [srt_passphrase, { "type": "null" }], "description": "null removes the channel's passphrase (and its key length)." },
                "srt_pbkeylen": { "enum": [16, 24, 32, null], "description": "null: the node's key length. Refused (400) when the channel has no passphrase and the request sets none." }
            }
        },
        "ChannelPage": {
            "type": "object", "additionalProperties": false, "required": ["items", "limit", "offset"],
            "properties": {
                "items": { "type": "array", "items": r("Channel") },
                "limit": { "type": "integer" }, "offset": { "type": "integer" }
            }
        },
        "PlaybackTokenRequest": {
            "type": "object", "additionalProperties": false, "required": ["ttl_secs"],
            "properties": {
                "ttl_secs": { "type": "integer", "minimum": 1, "maximum": 86400 },
                "viewer_id": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_.@-]+$" }
            }
        },
        "PlaybackToken": {
            "type": "object", "additionalProperties": false, "required": ["token", "expires_at", "channel_id"],
            "properties": { "token": str_, "expires_at": ts, "channel_id": str_ }
        },
        "Device": {
            "type": "object", "additionalProperties": false,
            "required": ["id", "org_id", "channel_id", "name", "kind", "state", "last_seen_at", "created_at", "revoked_at"],
            "properties": {
                "id": str_, "org_id": str_, "channel_id": nullable("string"), "name": str_,
                "kind": { "type": "string", "enum": ["encoder", "phone", "studio", "other"] },
                "state": { "type": "string", "enum": ["live", "idle", "offline"] },
                "last_seen_at": nts, "created_at": ts, "revoked_at": nts
            }
        },
        "NewDevice": {
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {
                "name": text(100),
                "kind": { "type": "string", "enum": ["encoder", "phone", "studio", "other"] },
                "channel_id": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" }
            }
        },
        "DeviceList": list_of("Device"),
        "StreamKey": {
            "type": "object", "additionalProperties": false,
            "required": ["id", "org_id", "device_id", "channel_id", "prefix", "created_at", "revoked_at", "last_used_at", "last_used_addr"],
            "properties": {
                "id": str_, "org_id": str_, "device_id": str_, "channel_id": str_,
                "prefix": str_, "created_at": ts, "revoked_at": nts, "last_used_at": nts,
                "last_used_addr": nullable("string")
            }
        },
        "NewStreamKey": {
            "type": "object", "additionalProperties": false,
            "properties": { "channel_id": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$", "description": "Defaults to the device's channel." } }
        },
        "StreamKeyList": list_of("StreamKey")
    })
}

pub(crate) fn list_of(item: &str) -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["items"],
        "properties": { "items": { "type": "array", "items": r(item) } }
    })
}

/// A view schema plus the one-time `secret` (a full copy, not `allOf`: the base is
/// closed with `additionalProperties: false`, which `allOf` would violate).
pub(crate) fn with_secret(base: &Value, desc: &str) -> Value {
    let mut s = base.clone();
    s["properties"]["secret"] = json!({ "type": "string", "description": desc });
    if let Some(req) = s["required"].as_array_mut() {
        req.push(json!("secret"));
    }
    s
}

fn all_schemas() -> Value {
    let mut s = schemas();
    s["ApiTokenCreated"] = with_secret(&s["ApiToken"], "Shown only in this response.");
    s["StreamKeyCreated"] = with_secret(
        &s["StreamKey"],
        "The stream key; shown only in this response.",
    );
    s
}

/// `?limit=&offset=` of a listing.
pub(crate) fn page_params() -> Value {
    json!([
        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } },
        { "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX, "default": 0 } }
    ])
}

/// A listing page of `item`s.
pub(crate) fn page_of(item: &str) -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["items", "limit", "offset"],
        "properties": {
            "items": { "type": "array", "items": r(item) },
            "limit": { "type": "integer" }, "offset": { "type": "integer" }
        }
    })
}

/// A module's OpenAPI paths and schemas, by name.
pub(crate) type Section = (Vec<(&'static str, Value)>, Vec<(&'static str, Value)>);

/// Adds the paths and schemas that live next to their handlers (users, events, webhooks).
fn add_sections(doc: &mut Value) {
    for (paths, schemas) in [
        crate::users::openapi(),
        crate::events::openapi(),
        crate::webhooks::openapi(),
        crate::recordings::openapi(),
    ] {
        for (k, v) in paths {
            doc["paths"][k] = v;
        }
        for (k, v) in schemas {
            doc["components"]["schemas"][k] = v;
        }
    }
}

/// The document.
pub fn document() -> Value {
    let mut doc = base_document();
    add_sections(&mut doc);
    add_reframing_fields(&mut doc);
    add_node_routes(&mut doc);
    doc
}

/// A channel's reframing and highlight settings (docs/reframing.md), in `Channel`,
/// `NewChannel` and `ChannelPatch`: added here, as the schemas' own `json!` is at the
/// macro's recursion limit.
fn add_reframing_fields(doc: &mut Value) {
    let fields = json!({
        "reframe": { "type": "boolean", "description": "A vertical (9:16) window that follows the subject; needs the channel's ladder. Read when a publish begins." },
        "reframe_subject": { "type": "string", "enum": ["largest", "central"], "description": "Which face leads when they do not all fit in the window." },
        "highlights": { "type": "boolean", "description": "Highlight detection; needs the channel's ladder. Read when a publish begins." },
        "highlight_sensitivity": { "type": "number", "minimum": 0.1, "maximum": 10, "description": "1 by default; higher finds more highlights." }
    });
    for schema in ["Channel", "NewChannel", "ChannelPatch"] {
        let s = &mut doc["components"]["schemas"][schema];
        for (k, v) in fields.as_object().into_iter().flatten() {
            s["properties"][k] = v.clone();
            if schema == "Channel" {
                if let Some(required) = s["required"].as_array_mut() {
                    required.push(json!(k));
                }
            }
        }
    }
}

/// The node's own `/api` routes ([`crate::NODE_ROUTES`]): the live list, the
/// live-state stream and a channel's reframing. They serve everyone; credentials, if
/// sent, show the caller's organisation's unlisted and private channels (and their
/// events' triggers) too.
fn add_node_routes(doc: &mut Value) {
    let track = json!({
        "type": ["object", "null"],
        "properties": {
            "codec": { "type": "string" }, "width": { "type": "integer" },
            "height": { "type": "integer" }, "frame_rate": { "type": ["number", "null"] },
            "sample_rate": { "type": "integer" }, "channels": { "type": "integer" }
        }
    });
    // Its own value: one json! for the whole list passes the macro's recursion limit.
    let srt = json!({
        "type": "object", "additionalProperties": false,
        "description": "The SRT link of the publisher: libsrt's figures since the link started, refreshed every second.",
        "required": ["protocol", "mode", "rtt_ms", "receive_rate_mbps", "latency_ms", "receive_buffer_ms", "packets_received", "packets_lost", "packets_retransmitted", "packets_dropped", "ts_packets", "ts_continuity_errors", "ts_bytes_skipped", "ts_unknown_pid_packets", "ts_pes_length_errors", "ts_pes_lost"],
        "properties": {
            "protocol": { "type": "string", "enum": ["srt"] },
            "mode": { "type": "string", "enum": ["publish", "pull"], "description": "publish: the encoder called this node; pull: this node called the encoder." },
            "rtt_ms": { "type": "number" },
            "receive_rate_mbps": { "type": "number" },
            "latency_ms": { "type": "integer", "minimum": 0, "description": "The negotiated SRT latency." },
            "receive_buffer_ms": { "type": "integer", "minimum": 0 },
            "packets_received": { "type": "integer", "minimum": 0 },
            "packets_lost": { "type": "integer", "minimum": 0, "description": "Found missing on receipt; most arrive later by retransmission." },
            "packets_retransmitted": { "type": "integer", "minimum": 0 },
            "packets_dropped": { "type": "integer", "minimum": 0, "description": "Given up on: too late to play. Each is media lost." },
            "ts_packets": { "type": "integer", "minimum": 0, "description": "MPEG-TS packets demuxed." },
            "ts_continuity_errors": { "type": "integer", "minimum": 0, "description": "continuity_counter gaps: TS packets the sender never delivered." },
            "ts_bytes_skipped": { "type": "integer", "minimum": 0, "description": "Bytes skipped to find the 0x47 sync byte again." },
            "ts_unknown_pid_packets": { "type": "integer", "minimum": 0, "description": "Packets on PIDs the PMT does not list (ignored)." },
            "ts_pes_length_errors": { "type": "integer", "minimum": 0, "description": "PES whose PES_packet_length disagrees with the bytes that came (dropped)." },
            "ts_pes_lost": { "type": "integer", "minimum": 0, "description": "PES dropped because packets of it were lost: frames missing from the output." }
        }
    });
    let ingest = json!({
        "description": "How the channel comes in, where there is more to say than RTMP: an SRT link's figures, a WebRTC (WHIP) publisher, or an external packager pushing over HTTP PUT (whose tracks this node does not know: `video` and `audio` are null). Null otherwise.",
        "oneOf": [
            { "type": "null" },
            srt,
            { "type": "object", "additionalProperties": false, "required": ["protocol"],
              "properties": { "protocol": { "type": "string", "enum": ["put", "webrtc"] } } }
        ]
    });
    let reframe = reframe_schemas(doc);
    doc["components"]["schemas"]["LiveList"] = json!({
        "type": "object", "additionalProperties": false, "required": ["channels"],
        "properties": { "channels": { "type": "array", "items": {
            "type": "object", "additionalProperties": false,
            "required": ["name", "since", "video", "audio", "viewers"],
            "properties": {
                "name": { "type": "string" },
                "since": { "type": ["string", "null"], "description": "When the publish began (ISO 8601, UTC)." },
                "video": track.clone(), "audio": track,
                "viewers": { "type": "integer", "minimum": 0, "description": "RTMP and SRT players." },
                "ingest": ingest,
                "backup": { "type": "boolean", "description": "A backup encoder stands by (`KEY?pipeline=backup` over RTMP, `pipeline=backup` in an SRT stream id) and takes over if this one stops." },
                "ladder": { "type": ["object", "null"], "additionalProperties": false,
                    "description": "The transcoding ladder of this publish; null before it is decided.",
                    "required": ["state", "rungs", "shed", "reason", "restarts"],
                    "properties": {
                        "state": { "type": "string", "enum": ["running", "starting", "restarting", "source only"] },
                        "rungs": { "type": "array", "items": { "type": "string" }, "description": "Renditions being encoded besides the source." },
                        "shed": { "type": "array", "items": { "type": "string" }, "description": "Rungs dropped because this node could not encode them in real time." },
                        "reason": { "type": ["string", "null"], "description": "Why there is no ladder, or why it restarts." },
                        "restarts": { "type": "integer", "minimum": 0 }
                    }
                },
                "reframe": reframe,
                "p2p": { "type": ["object", "null"], "additionalProperties": false,
                    "description": "The P2P grid of the channel on this node (docs/p2p.md): peers in its swarms now and what its players reported; null when there is neither.",
                    "required": ["peers", "offload_ratio", "rebuffer_ratio", "mean_startup_ms", "reports"],
                    "properties": {
                        "peers": { "type": "integer", "minimum": 0 },
                        "offload_ratio": { "type": "number", "minimum": 0, "maximum": 1, "description": "Bytes players got from peers over all the bytes they got." },
                        "rebuffer_ratio": { "type": "number", "minimum": 0, "maximum": 1, "description": "Time stalled over time stalled and playing." },
                        "mean_startup_ms": { "type": ["integer", "null"], "minimum": 0 },
                        "reports": { "type": "integer", "minimum": 0, "description": "Player reports received." }
                    }
                },
                "analysis": { "type": ["object", "null"], "additionalProperties": false,
                    "description": "The analysis tap's newest values while the ladder runs.",
                    "required": ["loudness_lufs", "picture"],
                    "properties": {
                        "loudness_lufs": { "type": ["number", "null"], "description": "EBU R128 momentary loudness." },
                        "picture": { "type": ["object", "null"], "additionalProperties": false,
                            "required": ["width", "height", "media_time_ms"],
                            "properties": {
                                "width": { "type": "integer", "minimum": 1 },
                                "height": { "type": "integer", "minimum": 1 },
                                "media_time_ms": { "type": "integer" }
                            }
                        }
                    }
                }
            }
        }}}
    });
    let optional_auth = json!([{}, { "bearer": [] }, { "session": [] }]);
    doc["paths"]["/api/v1/live"] = json!({ "get": {
        "summary": "What is live on this node. Anonymous: public channels only; signed in: also the caller's organisation's unlisted and private ones.",
        "security": optional_auth,
        "responses": { "200": resp("Live channels.", r("LiveList")) }
    }});
    let sse = json!({ "get": {
        "summary": "Live-state triggers (Server-Sent Events; never ends). Anonymous clients receive triggers of events on public and unlisted channels; signed-in ones also their organisation's private channels'.",
        "description": "Frames: `hello` (`retry:`, `id:`, `data: {\"seq\"}`), `resync` when `Last-Event-ID` cannot be honoured, then `state` frames `data: {\"seq\",\"event_id\",\"state\",\"at\"}` with `id: <seq>`, and `: keep-alive` comments. Resume with the `Last-Event-ID` header or `?last_event_id=`.",
        "security": optional_auth,
        "parameters": [
            { "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 64 } },
            { "name": "last_event_id", "in": "query", "required": false, "schema": { "type": "string", "maxLength": 64 } }
        ],
        "responses": { "200": {
            "description": "An endless event stream.",
            "content": { "text/event-stream": { "schema": { "type": "string" } } }
        }}
    }});
    // The live-state stream's two paths.
    for (_, path) in &crate::NODE_ROUTES[1..3] {
        doc["paths"][*path] = sse.clone();
    }
    doc["paths"]["/api/v1/live/{channel}/reframe"] = json!({ "get": {
        "summary": "A reframed channel's status, its vertical window's path (media time from `since_ms` on, 5 points a second) and its highlights (docs/reframing.md). Found like `/api/v1/live` lists: a private channel by its organisation's members only.",
        "security": optional_auth,
        "parameters": [
            { "name": "channel", "in": "path", "required": true, "schema": { "type": "string" } },
            { "name": "since_ms", "in": "query", "required": false,
              "schema": { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
              "description": "Only points at or after this media time (ms)." }
        ],
        "responses": {
            "200": resp("The channel's reframing.", r("Reframe")),
            "400": error_resp("since_ms is not an integer."),
            "404": error_resp("The channel is not reframed on this node (not live here, not asking for it, or not visible to the caller).")
        }
    }});
}

/// The schemas of reframing: its status (in the live list, and its own route's), and
/// the route's answer. Returns the live list's `reframe` property.
fn reframe_schemas(doc: &mut Value) -> Value {
    doc["components"]["schemas"]["ReframeStatus"] = json!({
        "type": "object", "additionalProperties": false,
        "required": ["state", "reframe", "highlights", "detector", "detector_reason", "reason", "follow", "faces", "window_x", "window_width", "pictures", "pictures_skipped", "detections_skipped", "detect_ms", "highlights_found", "clips_reason"],
        "properties": {
            "state": { "type": "string", "enum": ["running", "waiting", "ended"], "description": "ended: the channel's last run (its highlights and clips stay listed until the next)." },
            "reframe": { "type": "boolean" },
            "highlights": { "type": "boolean" },
            "detector": { "type": "string", "enum": ["faces", "motion"], "description": "motion: no face detector (`detector_reason` says why)." },
            "detector_reason": { "type": ["string", "null"] },
            "reason": { "type": ["string", "null"], "description": "Why it is waiting." },
            "follow": { "type": ["string", "null"], "enum": ["faces", "subject", "motion", "hold", "centre", "passthrough", null] },
            "faces": { "type": "integer", "minimum": 0 },
            "window_x": { "type": ["number", "null"], "description": "The window's left edge, a share of the picture's width." },
            "window_width": { "type": ["number", "null"] },
            "pictures": { "type": "integer", "minimum": 0 },
            "pictures_skipped": { "type": "integer", "minimum": 0 },
            "detections_skipped": { "type": "integer", "minimum": 0, "description": "Pictures framed without a detection, detection being behind the live edge." },
            "detect_ms": { "type": ["number", "null"] },
            "highlights_found": { "type": "integer", "minimum": 0 },
            "clips_reason": { "type": ["string", "null"], "description": "Why the last highlight got no clip (the channel does not record, …)." }
        }
    });
    doc["components"]["schemas"]["Reframe"] = json!({
        "type": "object", "additionalProperties": false,
        "required": ["status", "path", "highlights", "clips"],
        "properties": {
            "status": r("ReframeStatus"),
            "path": { "type": "array", "items": {
                "type": "object", "additionalProperties": false,
                "required": ["t_ms", "x", "width", "cut", "follow", "faces"],
                "properties": {
                    "t_ms": { "type": "integer", "description": "Media time (ms), the channel's segments' timeline." },
                    "x": { "type": "number", "description": "The window's left edge, a share of the picture's width (full height)." },
                    "width": { "type": "number" },
                    "cut": { "type": "boolean", "description": "A new shot: the window jumped here." },
                    "follow": { "type": "string" },
                    "faces": { "type": "integer", "minimum": 0 }
                }
            }},
            "highlights": { "type": "array", "items": {
                "type": "object", "additionalProperties": false,
                "required": ["peak_ms", "start_ms", "end_ms", "score", "cause"],
                "properties": {
                    "peak_ms": { "type": "integer" }, "start_ms": { "type": "integer" },
                    "end_ms": { "type": "integer" }, "score": { "type": "number" },
                    "cause": { "type": "string", "enum": ["loudness", "motion", "cuts", "faces"] }
                }
            }},
            "clips": { "type": "array", "description": "Each highlight's clip, cut from the recording (whole segments, no re-encode), newest last.", "items": {
                "type": "object", "additionalProperties": false,
                "required": ["id", "run", "first_segment", "last_segment", "start_ms", "end_ms", "peak_ms", "duration_secs", "cause", "score", "playlist", "vertical_playlist", "created_at"],
                "properties": {
                    "id": { "type": "string" },
                    "run": { "type": "string", "description": "The recording it is cut from (/vod/{channel}/{run}/)." },
                    "first_segment": { "type": "integer", "minimum": 0 },
                    "last_segment": { "type": "integer", "minimum": 0 },
                    "start_ms": { "type": "integer", "description": "Media time where the clip starts (a keyframe at or before the highlight's start)." },
                    "end_ms": { "type": "integer" }, "peak_ms": { "type": "integer" },
                    "duration_secs": { "type": "number" },
                    "cause": { "type": "string", "enum": ["loudness", "motion", "cuts", "faces"] },
                    "score": { "type": "number" },
                    "playlist": { "type": "string", "description": "Its multivariant playlist (the ladder), VOD." },
                    "vertical_playlist": { "type": ["string", "null"], "description": "Its vertical (9:16) playlist, when the channel was reframed." },
                    "created_at": { "type": "integer", "description": "Unix ms." }
                }
            }}
        }
    });
    json!({ "oneOf": [{ "type": "null" }, r("ReframeStatus")],
        "description": "Vertical reframing and highlights of the channel (docs/reframing.md); null when it asks for neither." })
}

fn base_document() -> Value {
    let login = json!({
        "summary": "Log in; sets the `starling_session` cookie (HttpOnly, SameSite=Strict).",
        "security": [],
        "requestBody": body(r("Login")),
        "responses": {
            "200": {
                "description": "Logged in.",
                "headers": { "Set-Cookie": { "schema": { "type": "string" } } },
                "content": json_content(r("Principal"))
            },
            "400": error_resp("Malformed body."),
            "401": error_resp("Invalid email or password."),
            "413": error_resp("Body over 1 MiB."),
            "415": error_resp("Body is not JSON."),
            "429": {
                "description": "Too many failed logins.",
                "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                "content": json_content(r("Error"))
            }
        }
    });
    let logout = json!({
        "summary": "Log out: revokes the session in the cookie and clears it.",
        "security": [],
        "responses": { "204": { "description": "Logged out." } }
    });
    let openapi = json!({
        "summary": "This document.",
        "security": [],
        "responses": { "200": { "description": "OpenAPI 3.1 document.", "content": { "application/json": { "schema": { "type": "object" } } } } }
    });
    let page_params = page_params();
    let body_errors = ["404", "409", "413", "415"];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Starling management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, API tokens, channels, devices, stream keys and playback tokens. Another organisation's resources answer 404."
        },
        "servers": [{ "url": "/" }],
        "paths": {
            "/api/openapi.json": { "get": openapi },
            "/api/v1/login": { "post": login },
            "/api/v1/logout": { "post": logout },
            "/api/v1/me": { "get": op("The caller.", ("200", resp("The caller.", r("Principal"))), &[]) },
            "/api/v1/tokens": {
                "get": op("The caller's API tokens (no secrets).", ("200", resp("Tokens.", r("ApiTokenList"))), &[]),
                "post": with(op("Create an API token; the secret is in this response only.",
                    ("201", resp("Created.", r("ApiTokenCreated"))), &["413", "415"]),
                    "requestBody", body(r("NewApiToken")))
            },
            "/api/v1/tokens/{id}": {
                "parameters": id_param("API token"),
                "delete": op("Revoke an API token.", no_content("Revoked."), &["404"])
            },
            "/api/v1/channels": {
                "get": with(op("The organisation's channels, by name.", ("200", resp("A page.", r("ChannelPage"))), &[]),
                    "parameters", page_params),
                "post": with(op("Create a channel.", ("201", resp("Created.", r("Channel"))), &body_errors),
                    "requestBody", body(r("NewChannel")))
            },
            "/api/v1/channels/{id}": {
                "parameters": id_param("channel"),
                "get": op("A channel.", ("200", resp("The channel.", r("Channel"))), &["404"]),
                "patch": with(op("Change a channel.", ("200", resp("The channel.", r("Channel"))), &body_errors),
                    "requestBody", body(r("ChannelPatch"))),
                "delete": op("Delete a channel and its stream keys.", no_content("Deleted."), &["404"])
            },
            "/api/v1/channels/{id}/playback-tokens": {
                "parameters": id_param("channel"),
                "post": with(op("Issue a signed playback token.", ("201", resp("The token.", r("PlaybackToken"))), &body_errors),
                    "requestBody", body(r("PlaybackTokenRequest")))
            },
            "/api/v1/devices": {
                "get": op("The organisation's devices.", ("200", resp("Devices.", r("DeviceList"))), &[]),
                "post": with(op("Register a device.", ("201", resp("Created.", r("Device"))), &body_errors),
                    "requestBody", body(r("NewDevice")))
            },
            "/api/v1/devices/{id}": {
                "parameters": id_param("device"),
                "get": op("A device.", ("200", resp("The device.", r("Device"))), &["404"]),
                "delete": op("Revoke a device and all its keys.", no_content("Revoked."), &["404"])
            },
            "/api/v1/devices/{id}/keys": {
                "parameters": id_param("device"),
                "get": op("A device's stream keys (no secrets).", ("200", resp("Keys.", r("StreamKeyList"))), &["404"]),
                "post": with(op("Create a stream key; the secret is in this response only.",
                    ("201", id_links(resp("Created.", r("StreamKeyCreated")),
                        &[("RotateKey", "/api/v1/keys/{id}/rotate", "post"), ("RevokeKey", "/api/v1/keys/{id}", "delete")])),
                    &body_errors),
                    "requestBody", body(r("NewStreamKey")))
            },
            "/api/v1/keys/{id}/rotate": {
                "parameters": id_param("stream key"),
                "post": op("Replace a key: a new secret, the old key revoked.",
                    ("201", resp("The new key.", r("StreamKeyCreated"))), &["404"])
            },
            "/api/v1/keys/{id}": {
                "parameters": id_param("stream key"),
                "delete": op("Revoke a stream key.", no_content("Revoked."), &["404"])
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API token (`st_…`)." },
                "session": { "type": "apiKey", "in": "cookie", "name": "starling_session" }
            },
            "schemas": all_schemas()
        }
    })
}
