//! TCP listeners and the HTTP/1 connection loop shared by all servers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::body::MockBody;
use crate::error::MockError;

/// Binds a listener on 127.0.0.1 (never anything else).
pub(crate) async fn bind(port: u16, what: &str) -> Result<(TcpListener, SocketAddr), MockError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| MockError::new(format!("{what}: cannot bind 127.0.0.1:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| MockError::new(format!("{what}: local_addr: {e}")))?;
    Ok((listener, addr))
}

/// Resolves once shutdown is requested (or the sender is gone).
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Accepts connections until shutdown and serves each with `handler`.
pub(crate) fn serve<H, F>(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    handler: H,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<MockBody>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true);
        let mut stop = shutdown.clone();
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = shutdown_requested(&mut stop) => break,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    eprintln!("meridian-mock: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let builder = builder.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                // Connection errors (client gone, deliberate cuts) are normal here.
                tokio::select! {
                    _ = conn => {}
                    _ = shutdown_requested(&mut stop) => {}
                }
            });
        }
    })
}
