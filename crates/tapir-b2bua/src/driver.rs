//! The tokio driver: moves datagrams between a UDP socket and the sans-IO
//! [`B2bua`], effects from the switch into it, and its reports back to the
//! switch, and fires its timers. It holds no telephony or SIP rule of its own.

use crate::{B2bua, MediaCommand, Out};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tapir_core::{Effect, Input, LegEvent, LegId};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};

/// What the driver asks of the switch.
#[derive(Debug)]
pub enum ToSwitch {
    /// Feed a signalling input.
    Input(Input),
    /// Carry out a device's REFER and say whether the switch accepted it.
    Refer {
        /// The leg that sent the REFER.
        leg: LegId,
        /// The transfer.
        event: LegEvent,
        /// The verdict.
        reply: oneshot::Sender<bool>,
    },
}

/// Run the B2BUA until the socket fails or the switch goes away.
/// `media` receives the media plane's work.
pub async fn run(
    socket: Arc<UdpSocket>,
    mut b2b: B2bua,
    mut effects: broadcast::Receiver<Effect>,
    to_switch: mpsc::Sender<ToSwitch>,
    media: mpsc::UnboundedSender<MediaCommand>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let deadline = b2b.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    b2b.handle_datagram(Instant::now(), source, data);
                }
                Err(e) => {
                    // ICMP errors surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "SIP socket receive error");
                }
            },
            effect = effects.recv() => match effect {
                Ok(effect) => b2b.handle_effect(Instant::now(), &effect),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "SIP driver lagged behind the switch's effects");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = sleep => b2b.handle_timeout(Instant::now()),
        }
        while let Some(out) = b2b.poll_output() {
            match out {
                Out::Send { to, data } => {
                    if let Err(e) = socket.send_to(&data, to).await {
                        tracing::debug!(%to, error = %e, "SIP send failed");
                    }
                }
                Out::Switch(input) => {
                    if to_switch.send(ToSwitch::Input(input)).await.is_err() {
                        return;
                    }
                }
                Out::Refer { leg, event } => {
                    let (reply, verdict) = oneshot::channel();
                    if to_switch
                        .send(ToSwitch::Refer { leg, event, reply })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let accepted = verdict.await.unwrap_or(false);
                    b2b.refer_outcome(Instant::now(), leg, accepted);
                }
                Out::Media(command) => {
                    let _ = media.send(command);
                }
            }
        }
    }
}
