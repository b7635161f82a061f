//! The [`Directory`] of a real server: `tapir_sip`'s digest authenticator and
//! registrar over the passwords of the configured phone lines.

use crate::Directory;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use tapir_sip::auth::{AuthConfig, AuthOutcome, Authenticator};
use tapir_sip::msg::Message;
use tapir_sip::registrar::{Registrar, RegistrarConfig, Transport};

/// Phones' passwords, registrations and the authentication of their requests.
#[derive(Debug)]
pub struct SipDirectory {
    auth: Authenticator,
    registrar: Registrar,
    passwords: HashMap<String, String>,
}

impl SipDirectory {
    /// A directory for `realm` whose users are `passwords` (address → password).
    pub fn new(now: Instant, realm: &str, passwords: HashMap<String, String>) -> SipDirectory {
        SipDirectory {
            auth: Authenticator::new(AuthConfig::new(realm), now),
            registrar: Registrar::new(RegistrarConfig::default()),
            passwords,
        }
    }
}

impl Directory for SipDirectory {
    fn register(&mut self, now: Instant, request: &Message, source: SocketAddr) -> Message {
        let passwords = &self.passwords;
        let credentials = |user: &str| passwords.get(user).cloned();
        self.registrar
            .register(
                now,
                request,
                source,
                Transport::Udp,
                &mut self.auth,
                &credentials,
            )
            .response
    }

    fn admit(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
    ) -> Result<String, Box<Message>> {
        let passwords = &self.passwords;
        let credentials = |user: &str| passwords.get(user).cloned();
        match self
            .auth
            .authenticate(now, request, source.ip(), &credentials)
        {
            AuthOutcome::Authenticated(identity) => Ok(identity.user),
            AuthOutcome::Rejected(rejection) => Err(Box::new(rejection.response)),
        }
    }

    fn contacts(&self, now: Instant, address: &str) -> Vec<SocketAddr> {
        self.registrar
            .contacts(address, now)
            .iter()
            .map(|b| b.source)
            .collect()
    }
}
