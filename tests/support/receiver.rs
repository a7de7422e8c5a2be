//! A local HTTP receiver on 127.0.0.1:0 that records every request and
//! answers with a scripted response: the suite's stand-in for a customer's
//! webhook endpoint, on the same [`FakeServer`] as the vendor fakes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Response;

use crate::fakes::server::{Answer, Fake, FakeServer};
pub use crate::fakes::server::{Call, reply};

/// Builds the answer to each request.
type Respond = Arc<dyn Fn(&Call) -> Response<Body> + Send + Sync>;

/// The receiver's state: how it answers, and how long it takes.
pub struct Responder {
    respond: Respond,
    delay: Duration,
}

impl Fake for Responder {
    fn answer(&mut self, call: &Call) -> Answer {
        // Built after the delay and outside the lock, so slow answers
        // overlap and a responder sees the time it answers at.
        let (respond, call) = (self.respond.clone(), call.clone());
        Answer::later(self.delay, move || respond(&call))
    }
}

/// A running receiver; dropping it stops the server.
pub type Receiver = FakeServer<Responder>;

impl Receiver {
    /// Start a receiver whose answers come from `respond`.
    pub async fn start(respond: impl Fn(&Call) -> Response<Body> + Send + Sync + 'static) -> Receiver {
        Self::start_delayed(Duration::ZERO, respond).await
    }

    /// Like `start`, but every answer comes `delay` after the request.
    pub async fn start_delayed(
        delay: Duration,
        respond: impl Fn(&Call) -> Response<Body> + Send + Sync + 'static,
    ) -> Receiver {
        FakeServer::serve(Responder { respond: Arc::new(respond), delay }).await
    }

    /// A receiver that answers every request with `status` and `body`.
    pub async fn answering(status: u16, body: &'static str) -> Receiver {
        Self::start(move |_| reply(status, &[], body)).await
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Call> {
        self.calls()
    }
}
