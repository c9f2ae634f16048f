//! Telemetry sink: appends each update event as one JSON object per line to
//! `events.jsonl` in the sink's data directory. A batch is written with one
//! write call, so a crash leaves whole lines of earlier batches.

use std::io::Write;

use serde_json::{Value, json};
use upkeep_plugin_sdk::{DownloadStats, ErrorCategory, EventBatch, EventResult, EventType, TelemetrySink, UpdateEvent};

struct Jsonl;

fn event_type(t: EventType) -> u16 {
    match t {
        EventType::Install => 2,
        EventType::Update => 3,
        EventType::Uninstall => 4,
        EventType::Download => 14,
        EventType::AppCommand => 41,
        EventType::Action => 42,
        EventType::Other(n) => n,
    }
}

fn event_result(r: EventResult) -> u16 {
    match r {
        EventResult::Error => 0,
        EventResult::Success => 1,
        EventResult::SuccessReboot => 2,
        EventResult::Cancelled => 4,
        EventResult::NoUpdate => 7,
        EventResult::UpdateDeferred => 9,
        EventResult::Other(n) => n,
    }
}

fn error_category(c: ErrorCategory) -> u8 {
    match c {
        ErrorCategory::None => 0,
        ErrorCategory::Download => 1,
        ErrorCategory::Unpack => 2,
        ErrorCategory::Install => 3,
        ErrorCategory::Service => 4,
        ErrorCategory::UpdateCheck => 5,
    }
}

fn download(d: &DownloadStats) -> Value {
    json!({
        "url": d.url,
        "downloader": d.downloader,
        "downloaded": d.downloaded_bytes,
        "total": d.total_bytes,
        "download_time_ms": d.download_time_ms,
    })
}

fn line(e: &UpdateEvent) -> Value {
    json!({
        "appid": e.app_id,
        "eventtype": event_type(e.event_type),
        "eventresult": event_result(e.outcome),
        "errorcat": error_category(e.error_category),
        "errorcode": e.error_code,
        "extracode1": e.extra_code,
        "previousversion": e.previous_version,
        "nextversion": e.next_version,
        "download": e.download.as_ref().map(download),
        "timestamp_ms": e.timestamp_ms,
        "duration_ms": e.duration_ms,
        "sessionid": e.session_id,
    })
}

impl TelemetrySink for Jsonl {
    fn consume(batch: EventBatch) -> Result<(), String> {
        let mut text = String::new();
        for e in &batch.events {
            text.push_str(&line(e).to_string());
            text.push('\n');
        }
        let path = format!("{}/events.jsonl", batch.data_dir);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        file.write_all(text.as_bytes()).map_err(|e| format!("cannot append to {path}: {e}"))?;
        file.flush().map_err(|e| format!("cannot append to {path}: {e}"))?;
        upkeep_plugin_sdk::debug!("appended {} events", batch.events.len());
        Ok(())
    }
}

upkeep_plugin_sdk::export_telemetry_sink!(Jsonl);
