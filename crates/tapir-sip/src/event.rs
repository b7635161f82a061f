//! Bodies of the event packages tapir notifies (RFC 6665 subscriptions):
//! the dialog package's `application/dialog-info+xml` (RFC 4235) that
//! drives phones' busy lamps, and presence's `application/pidf+xml`
//! (RFC 3863, with the RPID `on-the-phone` activity of RFC 4480).
//!
//! Pure functions: they build XML text from plain values and escape every
//! value they insert, so a caller's display name cannot break the
//! document.

use std::fmt::Write as _;

/// The content type of a dialog package body.
pub const DIALOG_INFO: &str = "application/dialog-info+xml";
/// The content type of a presence body.
pub const PIDF: &str = "application/pidf+xml";

/// An event package tapir serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Package {
    /// `Event: dialog` (RFC 4235).
    Dialog,
    /// `Event: presence` (RFC 3856).
    Presence,
}

impl Package {
    /// The package an `Event` header's type names, if tapir serves it.
    pub fn from_event(name: &str) -> Option<Package> {
        if name.eq_ignore_ascii_case("dialog") {
            Some(Package::Dialog)
        } else if name.eq_ignore_ascii_case("presence") {
            Some(Package::Presence)
        } else {
            None
        }
    }

    /// The package's name in an `Event` header.
    pub fn name(self) -> &'static str {
        match self {
            Package::Dialog => "dialog",
            Package::Presence => "presence",
        }
    }

    /// The content type of the package's NOTIFY bodies.
    pub fn content_type(self) -> &'static str {
        match self {
            Package::Dialog => DIALOG_INFO,
            Package::Presence => PIDF,
        }
    }
}

/// The packages tapir serves, for `Allow-Events`.
pub const ALLOW_EVENTS: &str = "dialog, presence";

/// A dialog's state in RFC 4235's state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPhase {
    /// A request was sent or received, no provisional answer yet.
    Trying,
    /// A provisional answer (ringing).
    Early,
    /// Answered.
    Confirmed,
    /// Ended.
    Terminated,
}

impl DialogPhase {
    /// The `<state>` text.
    pub fn as_str(self) -> &'static str {
        match self {
            DialogPhase::Trying => "trying",
            DialogPhase::Early => "early",
            DialogPhase::Confirmed => "confirmed",
            DialogPhase::Terminated => "terminated",
        }
    }
}

/// One `<dialog>` element of a dialog-info document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogEntry {
    /// The element's `id` (unique within the document, stable over time).
    pub id: String,
    /// The SIP Call-ID of the dialog (`None` hides it: a secure call).
    pub call_id: Option<String>,
    /// The `local-tag` attribute.
    pub local_tag: Option<String>,
    /// The `remote-tag` attribute.
    pub remote_tag: Option<String>,
    /// `Some(true)`: the observed address called (`initiator`);
    /// `Some(false)`: it was called (`recipient`).
    pub initiator: Option<bool>,
    /// Its state.
    pub phase: DialogPhase,
    /// The far party's URI (`None` hides it).
    pub remote: Option<String>,
    /// The far party's display name.
    pub remote_name: Option<String>,
    /// The observed address's URI.
    pub local: Option<String>,
}

/// XML-escape `text` for an attribute or element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A full-state `application/dialog-info+xml` document for `entity` (the
/// observed address's URI) at `version`.
pub fn dialog_info(entity: &str, version: u32, dialogs: &[DialogEntry]) -> String {
    let mut x = String::with_capacity(200 + dialogs.len() * 400);
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{}\">\r\n",
        escape(entity)
    );
    for d in dialogs {
        let _ = write!(x, "<dialog id=\"{}\"", escape(&d.id));
        if let Some(call_id) = &d.call_id {
            let _ = write!(x, " call-id=\"{}\"", escape(call_id));
        }
        if let Some(tag) = &d.local_tag {
            let _ = write!(x, " local-tag=\"{}\"", escape(tag));
        }
        if let Some(tag) = &d.remote_tag {
            let _ = write!(x, " remote-tag=\"{}\"", escape(tag));
        }
        if let Some(initiator) = d.initiator {
            let dir = if initiator { "initiator" } else { "recipient" };
            let _ = write!(x, " direction=\"{dir}\"");
        }
        let _ = write!(x, ">\r\n<state>{}</state>\r\n", d.phase.as_str());
        if let Some(local) = &d.local {
            let _ = write!(
                x,
                "<local><identity>{0}</identity><target uri=\"{0}\"/></local>\r\n",
                escape(local)
            );
        }
        if let Some(remote) = &d.remote {
            let name = d
                .remote_name
                .as_deref()
                .map(|n| format!(" display=\"{}\"", escape(n)))
                .unwrap_or_default();
            let _ = write!(
                x,
                "<remote><identity{name}>{0}</identity><target uri=\"{0}\"/></remote>\r\n",
                escape(remote)
            );
        }
        x.push_str("</dialog>\r\n");
    }
    x.push_str("</dialog-info>\r\n");
    x
}

/// What presence shows of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Registered and free.
    Available,
    /// Registered and on a call.
    Busy,
    /// Not registered.
    Offline,
    /// Do-not-disturb: calls from colleagues are refused.
    DoNotDisturb,
    /// Calls from colleagues are forwarded elsewhere at once.
    Forwarded,
}

/// A PIDF document (RFC 3863) for `entity` (a `sip:` URI): `open` with
/// the note `Available`, `open` with the RPID activity `on-the-phone`
/// when busy, `closed` when offline; do-not-disturb is `open` with the
/// RPID activity `busy` (RFC 4480; FreeSWITCH's and Asterisk's `dnd`),
/// forwarding `open` with the activity `away` and the note `Forwarded`.
pub fn pidf(entity: &str, availability: Availability) -> String {
    let (basic, note, activity) = match availability {
        Availability::Available => ("open", "Available", ""),
        Availability::Busy => (
            "open",
            "On the phone",
            "<dm:person id=\"p1\"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>\r\n",
        ),
        Availability::Offline => ("closed", "Offline", ""),
        Availability::DoNotDisturb => (
            "open",
            "Do not disturb",
            "<dm:person id=\"p1\"><rpid:activities><rpid:busy/></rpid:activities></dm:person>\r\n",
        ),
        Availability::Forwarded => (
            "open",
            "Forwarded",
            "<dm:person id=\"p1\"><rpid:activities><rpid:away/></rpid:activities></dm:person>\r\n",
        ),
    };
    let entity = escape(entity);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{entity}\">\r\n\
         <tuple id=\"t1\"><status><basic>{basic}</basic></status><contact>{entity}</contact><note>{note}</note></tuple>\r\n\
         {activity}</presence>\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_info_carries_state_tags_and_escaped_names() {
        let doc = dialog_info(
            "sip:201@pbx",
            3,
            &[DialogEntry {
                id: "d1".into(),
                call_id: Some("abc@pbx".into()),
                local_tag: Some("lt".into()),
                remote_tag: Some("rt".into()),
                initiator: Some(false),
                phase: DialogPhase::Early,
                remote: Some("sip:200@pbx".into()),
                remote_name: Some("A <&> \"B\"".into()),
                local: Some("sip:201@pbx".into()),
            }],
        );
        assert!(doc.contains("version=\"3\" state=\"full\" entity=\"sip:201@pbx\""));
        assert!(doc.contains(
            "<dialog id=\"d1\" call-id=\"abc@pbx\" local-tag=\"lt\" remote-tag=\"rt\" direction=\"recipient\">"
        ));
        assert!(doc.contains("<state>early</state>"));
        assert!(doc.contains("display=\"A &lt;&amp;&gt; &quot;B&quot;\""));
        assert!(!doc.contains("<&>"));
    }

    #[test]
    fn empty_dialog_info_is_a_full_idle_document() {
        let doc = dialog_info("sip:7001@pbx", 0, &[]);
        assert!(doc.contains("version=\"0\" state=\"full\""));
        assert!(!doc.contains("<dialog "));
    }

    #[test]
    fn pidf_shows_open_busy_and_closed() {
        assert!(pidf("sip:1@h", Availability::Available).contains("<basic>open</basic>"));
        let busy = pidf("sip:1@h", Availability::Busy);
        assert!(busy.contains("<basic>open</basic>") && busy.contains("on-the-phone"));
        assert!(pidf("sip:1@h", Availability::Offline).contains("<basic>closed</basic>"));
        let dnd = pidf("sip:1@h", Availability::DoNotDisturb);
        assert!(dnd.contains("<rpid:busy/>") && dnd.contains("Do not disturb"));
        assert!(pidf("sip:1@h", Availability::Forwarded).contains("<rpid:away/>"));
    }

    #[test]
    fn packages_are_named_case_insensitively() {
        assert_eq!(Package::from_event("Dialog"), Some(Package::Dialog));
        assert_eq!(Package::from_event("presence"), Some(Package::Presence));
        assert_eq!(Package::from_event("message-summary"), None);
    }
}
