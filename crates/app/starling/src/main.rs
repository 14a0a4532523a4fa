//! `starling`: every role of a Starling node in one binary.
//!
//! This is the binary's edge: configuration, logging, wiring the servers together,
//! graceful shutdown. `anyhow` lives here and nowhere below.

mod auth;
mod cluster_config;
mod config;
mod demo;
mod edge_config;
mod edge_node;
mod events;
mod http;
mod http_server;
mod ladder;
mod p2p;
mod p2p_config;
mod playback_gate;
mod push_config;
mod put_config;
mod recordings;
mod reframe;
mod reframe_config;
mod roles;
mod srt_config;
mod store_config;
mod thumbnails;
mod transcode_config;
mod usher;
mod webhooks;
mod webrtc_config;

use std::{path::PathBuf, sync::Arc, time::SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use starling_hub::Hub;
use starling_rtmp_server::ServerStats;
use tokio::{net::TcpListener, sync::watch};
use tracing::{error, info, warn};

use crate::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "starling",
    version,
    about = "Live video broadcasting: ingest, hub, origin."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node with every role (RTMP ingest and playback, HTTP).
    Serve(ServeArgs),
    /// A node plus a built-in live source on channel `demo` (a moving picture with a
    /// clock, and a beep every second): no encoder needed. Prints the URL to open.
    Demo(ServeArgs),
    /// Load and validate the configuration, print the result (keys redacted), and exit.
    CheckConfig(ServeArgs),
    /// Administration of the control plane.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin of the system organisation (creating it on first use). The
    /// password is read from STARLING_ADMIN_PASSWORD, else from the first line of stdin.
    CreateUser {
        #[command(flatten)]
        node: ServeArgs,
        #[arg(long)]
        email: String,
        /// Name of the system organisation, if it has to be created.
        #[arg(long, default_value = "system")]
        org: String,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (TOML). Also `STARLING_CONFIG`. Without one, the built-in defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overrides `rtmp.listen`.
    #[arg(long)]
    rtmp_listen: Option<std::net::SocketAddr>,
    /// Overrides `server.http_listen`.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// Overrides `server.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `server.roles`: `all`, or some of `ingest`, `origin`, `edge`, `api`.
    #[arg(long)]
    roles: Option<String>,
    /// Overrides `server.log_format` (`text` or `json`).
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

impl ServeArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("STARLING_CONFIG").map(PathBuf::from));
        // `--roles` joins the environment (after it, so it wins): the load's checks of the
        // sections a role needs (`[edge] origin`) must see the roles the node will run.
        let roles_flag = self
            .roles
            .clone()
            .map(|r| ("STARLING_SERVER_ROLES".to_owned(), r));
        let mut config = Config::load(file.as_deref(), std::env::vars().chain(roles_flag))?;
        if let Some(a) = self.rtmp_listen {
            config.rtmp.listen = a;
        }
        if let Some(a) = self.http_listen {
            config.server.http_listen = a;
        }
        if let Some(d) = &self.data_dir {
            config.server.data_dir = d.clone();
        }
        match self.log_format.as_deref() {
            Some("json") => config.server.log_format = LogFormat::Json,
            Some(_) => config.server.log_format = LogFormat::Text,
            None => {}
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => {
            let config = args.load()?;
            println!("{config:#?}");
            Ok(())
        }
        Command::Serve(args) => {
            let config = args.load()?;
            init_logging(&config);
            runtime()?.block_on(serve(config, None))
        }
        Command::Admin(AdminCommand::CreateUser { node, email, org }) => {
            let config = node.load()?;
            let password = match std::env::var("STARLING_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            runtime()?.block_on(async {
                let db = starling_control::Db::connect(&config.control()).await?;
                let user = db
                    .bootstrap_admin(&email, &password, &org, auth::now_ms())
                    .await?;
                println!(
                    "created admin {} ({}) in organisation {}",
                    user.email, user.id, user.org_id
                );
                anyhow::Ok(())
            })
        }
        Command::Demo(args) => {
            let config = args.load()?;
            init_logging(&config);
            runtime()?.block_on(serve(config, Some(DEMO_CHANNEL)))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

const DEMO_CHANNEL: &str = "demo";

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal; a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.server.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config, demo: Option<&'static str>) -> anyhow::Result<()> {
    let roles = config.roles()?;
    info!(roles = ?roles.names(), "starting");
    if !roles.origin {
        // `Roles::parse` lets only the edge run without an origin.
        return edge_node::serve(config, shutdown_signal()).await;
    }
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    if config.channels.is_empty() && demo.is_none() {
        info!("no [[channels]] configured: nobody can publish (see starling.example.toml)");
    }
    let hub = Arc::new(Hub::new(config.hub()));
    let store = config
        .store
        .open(data_dir, |name| std::env::var(name).ok())
        .await?;
    let origin = starling_origin::Origin::new(config.origin(), store.store.clone());
    for ch in &config.channels {
        origin.configure(
            &ch.name,
            auth::with_latency_mode(
                starling_origin::ChannelSettings {
                    record: ch.recording,
                    ..starling_origin::ChannelSettings::defaults(origin.config())
                },
                ch.latency_mode(),
            ),
        );
        origin.follow(&hub, &ch.name);
    }
    let mut demo_task = None;
    if let Some(name) = demo {
        if !config.channels.iter().any(|c| c.name == name) {
            origin.follow(&hub, name);
        }
        demo_task = Some(demo::DemoTask::start(hub.clone(), name)?);
    }
    let db = starling_control::Db::connect(&config.control())
        .await
        .context("opening the control plane database")?;
    // Private channels: HLS playback needs a token; the config file's channels and the
    // demo channel are not in the database and stay public.
    let signer = db
        .playback_signer()
        .await
        .context("loading the playback token key")?;
    let always_public = config
        .channels
        .iter()
        .map(|c| c.name.clone())
        .chain(demo.map(str::to_owned))
        .collect();
    let gate = playback_gate::DbPlaybackGate::new(db.clone(), signer, always_public);
    // The P2P grid: piece lists signed here (the origin role), the tracker where viewers
    // are (the edge role; a single node has both).
    let p2p = match p2p::start(
        &config.p2p,
        config.webrtc.p2p_ice_servers(),
        &db,
        Some(gate.clone() as _),
    )
    .await?
    {
        Some((signer, tracker)) => {
            origin.set_piece_signer(signer);
            roles.edge.then_some(tracker)
        }
        None => None,
    };
    let webhooks = webhooks::Webhooks::start(db.clone(), config.webhook_dispatcher()?)
        .context("starting the webhook dispatcher")?;
    let rtmp_stats = Arc::new(ServerStats::default());
    let srt_stats = Arc::new(starling_srt_server::ServerStats::default());
    let srt_links = Arc::new(starling_srt_server::Links::default());
    let ladders = Arc::new(ladder::Ladders::default());
    let reframes = Arc::new(reframe::Reframes::default());
    let http_stats = Arc::new(http_server::HttpStats::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = watch::channel(true);

    let http_listener = TcpListener::bind(config.server.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.server.http_listen))?;
    let http_addr = http_listener.local_addr()?;
    info!(addr = %http_addr, "HTTP listening");
    if let Some(name) = demo {
        let host = if http_addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            http_addr.ip().to_string()
        };
        let port = http_addr.port();
        println!(
            "\nStarling demo is live. Open http://{host}:{port}/watch/{name}\n\
             (HLS: http://{host}:{port}/live/{name}/index.m3u8; Ctrl-C stops.)\n"
        );
    }
    // Sequence numbers seeded from the clock: a restarted node never reuses one a client
    // still holds (an old id gets a resync instead).
    let live_state = starling_live_state::LiveStateBus::new(starling_live_state::BusConfig {
        initial_seq: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0),
        ..Default::default()
    });
    // Scheduled events follow the clock and this node's publishes.
    let emitter = webhooks.emitter();
    let on_change: events::OnChange = {
        let emitter = emitter.clone();
        Arc::new(move |ev, change| {
            emitter.emit(
                &ev.org_id,
                starling_control::WebhookEvent::EventStateChanged,
                webhooks::event_state_payload(ev, change),
            );
        })
    };
    let event_task =
        events::EventDriver::new(db.clone(), live_state.clone(), hub.clone(), Some(on_change))
            .spawn(shutdown_rx.clone());
    // The cluster (`[cluster] nats_url`): leases of live channels, revocations and
    // takeovers between nodes. NATS is never waited for: the node serves without it.
    let cluster = match config
        .cluster
        .cluster_config(config.server.http_listen.port())?
    {
        Some(c) => {
            let node = c.node_id.clone();
            let cluster = starling_cluster::Cluster::start(c)
                .await
                .context("joining the cluster")?;
            info!(node = %node, url = %starling_cluster::redact_url(&config.cluster.nats_url), "cluster: joining over NATS");
            Some(cluster)
        }
        None => None,
    };
    // One authorizer for every ingest protocol: the same keys publish over RTMP, SRT and
    // HTTP PUT.
    let auth = auth::NodeAuthorizer::new(
        config.channels.clone(),
        db.clone(),
        gate.clone(),
        hub.clone(),
        origin.clone(),
        auth::SrtDefaults {
            passphrase: config
                .srt
                .passphrase
                .get()
                .map(|p| (p.to_owned(), config.srt.pbkeylen)),
            pbkeylen: config.srt.pbkeylen,
        },
        cluster.clone(),
    );
    // In a cluster revocations arrive over NATS at once; the database is then only the
    // fallback for a NATS outage.
    auth.watch_revocations(std::time::Duration::from_secs(if cluster.is_some() {
        10
    } else {
        1
    }));
    // External packagers push here (HTTP PUT); the origin serves what they pushed.
    let pushed = (config.put.enabled && roles.ingest)
        .then(|| starling_http_put::PushIngest::new(config.put.push_config(), store.store.clone()));
    if let Some(p) = pushed.clone() {
        // What external packagers pushed before a restart is served again at once.
        tokio::spawn(async move {
            match p.discover().await {
                Ok(n) => info!(
                    channels = n,
                    "put: channels with pushed objects in the store"
                ),
                Err(e) => {
                    warn!(error = %e, "put: the store could not be listed; channels pushed before the restart are served once pushed to again")
                }
            }
            // Retention of pushed/: a first sweep now that the store's channels are
            // known, then every few minutes ([put] retention_hours, 0: none).
            p.start_retention();
        });
    }
    // The channels packaged here, pushed to a remote origin over PUT ([push] url).
    let push_metrics = Arc::new(starling_push::PushMetrics::default());
    let push_task = match config
        .push
        .push_config(config.origin().segment_duration, |n| std::env::var(n).ok())?
    {
        Some(p) => Some(
            starling_push::start(origin.clone(), p, push_metrics.clone(), shutdown_rx.clone())
                .context("starting the push to the remote origin")?,
        ),
        None => None,
    };
    // WHIP and WHEP: the routes on the HTTP port, every session's media on one UDP port.
    let webrtc = if config.webrtc.enabled && roles.ingest {
        let server = starling_webrtc_server::WebRtcServer::start(
            config
                .webrtc
                .server_config(config.origin().segment_duration),
            hub.clone(),
            auth.clone(),
            Some(gate.clone() as Arc<dyn starling_origin::PlaybackGate>),
        )
        .await
        .with_context(|| {
            format!(
                "binding WebRTC (UDP, and TCP for ICE-TCP) on {}",
                config.webrtc.udp_listen
            )
        })?;
        info!(addr = %server.udp_addr(), candidates = ?server.candidates(), "WebRTC listening");
        Some(server)
    } else {
        None
    };
    // Bound here (served below) so that the node can say where encoders reach it.
    let rtmp_listener = if config.rtmp.enabled && roles.ingest {
        Some(
            TcpListener::bind(config.rtmp.listen)
                .await
                .with_context(|| format!("binding RTMP on {}", config.rtmp.listen))?,
        )
    } else {
        None
    };
    // This node as the cluster's directory and the Usher see it.
    let me = starling_cluster::NodeInfo {
        id: cluster
            .as_ref()
            .map_or_else(|| "this-node".to_owned(), |c| c.node_id().to_owned()),
        roles: roles.names().into_iter().map(str::to_owned).collect(),
        http_url: cluster_config::ClusterSection::advertised(
            &config.cluster.advertise_http,
            "http",
            http_addr,
        ),
        rtmp_url: rtmp_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| {
                cluster_config::ClusterSection::advertised(
                    &config.cluster.advertise_rtmp,
                    "rtmp",
                    a,
                )
            }),
        srt_url: None,
        region: config.cluster.region.clone(),
        connections: 0,
        publishers: 0,
    };
    let usher = usher::Usher::new(cluster.clone(), me.clone(), config.cluster.viewers_per_edge);
    if let Some(c) = &cluster {
        let (http_stats, hub) = (http_stats.clone(), hub.clone());
        c.announce(move || starling_cluster::NodeInfo {
            connections: http_stats.open(),
            publishers: hub.live().len() as u64,
            ..me.clone()
        });
    }
    let stream_hooks = webhooks::notify_streams(&hub, db.clone(), origin.clone(), emitter.clone());
    let state = http::AppState {
        hub: hub.clone(),
        origin: origin.clone(),
        db: db.clone(),
        live_state: live_state.clone(),
        rtmp: rtmp_stats.clone(),
        srt: srt_stats.clone(),
        srt_links: srt_links.clone(),
        ladders: ladders.clone(),
        reframes: reframes.clone(),
        http: http_stats.clone(),
        gate: Some(gate.clone()),
        metrics: http::MetricsAccess {
            token: config.server.metrics_token.get().map(Into::into),
            on_main_port: config.server.metrics_listen.is_none(),
        },
        webhook_targets: config.webhook_targets(),
        store_stats: store.stats.clone(),
        put: pushed.map(|pushed| http::PutIngest {
            pushed,
            auth: auth.clone(),
        }),
        push: push_task.is_some().then(|| push_metrics.clone()),
        webrtc: webrtc.clone(),
        api: roles.api,
        cluster: cluster.clone(),
        usher,
        p2p: p2p.clone(),
        ready: ready_rx,
    };
    let metrics_task = match config.server.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, state.clone(), shutdown_rx.clone()).await?),
        None => None,
    };
    let app = http::router(state);
    // Peer addresses reach the API (login throttling per address); timeouts and caps
    // keep slow or idle clients from holding the server.
    let thumbnail_task = thumbnails::start(
        &config.thumbnails,
        origin.clone(),
        ladders.clone(),
        shutdown_rx.clone(),
    )
    .await;
    let face_model = config.reframe.model_path(&config.server.data_dir);
    let ladder_task = ladder::start(
        &config.transcode,
        ladder::Choices {
            config: config.channels.clone(),
            db: db.clone(),
            demo,
            // Without the face model reframing is off, and so is the rendition it steers.
            vertical: face_model.is_file().then_some(ladder::VerticalTarget {
                size: (
                    config.reframe.vertical_width,
                    config.reframe.vertical_height,
                ),
                kbps: config.reframe.vertical_kbps,
            }),
        },
        origin.clone(),
        ladders.clone(),
        shutdown_rx.clone(),
    )
    .await;
    let reframe_task = reframe::start(
        reframe::Plans::new(&config.reframe, &config.channels, db.clone()),
        face_model,
        origin.clone(),
        ladders.clone(),
        reframes,
        emitter,
        shutdown_rx.clone(),
    );
    let http_task = tokio::spawn(http_server::serve(
        http_listener,
        app,
        config.http_limits(),
        http_stats,
        shutdown_rx.clone(),
    ));

    let rtmp_task = rtmp_listener.map(|listener| {
        tokio::spawn(starling_rtmp_server::serve(
            listener,
            config.rtmp_server(),
            hub.clone(),
            auth.clone(),
            rtmp_stats.clone(),
            shutdown_rx.clone(),
        ))
    });
    let srt_server = if config.srt.enabled && roles.ingest {
        // Pulled channels are packaged from their first frame, like published ones.
        for p in &config.srt.pull {
            origin.follow(&hub, &p.channel);
        }
        let server = starling_srt_server::serve(
            config.srt.server_config(),
            hub.clone(),
            auth.clone(),
            auth.clone(),
            srt_stats.clone(),
            srt_links.clone(),
            tokio::runtime::Handle::current(),
            shutdown_rx.clone(),
        )
        .with_context(|| format!("starting SRT on {} (UDP)", config.srt.listen))?;
        Some(server)
    } else {
        None
    };

    shutdown_signal().await;
    info!("shutting down: finishing streams and closing connections");
    let _ = ready_tx.send(false);
    let _ = shutdown_tx.send(true);
    // Open SSE streams would hold the graceful shutdown forever.
    live_state.close();
    if let Some(p) = &p2p {
        p.shutdown();
    }
    if let Some(t) = rtmp_task {
        if let Err(e) = t.await {
            error!(error = %e, "RTMP server task failed");
        }
    }
    if let Some(srt) = srt_server {
        // Its threads block: wait for them off the async workers.
        let _ = tokio::task::spawn_blocking(move || srt.join()).await;
    }
    if let Some(w) = &webrtc {
        // WHIP publishers end like RTMP's and SRT's above; WHEP viewers go with them.
        w.shutdown(std::time::Duration::from_secs(5)).await;
    }
    // Publishers are gone: the last parts and segments are packaged and written before
    // the process exits (bounded), so a graceful restart loses nothing published.
    drop(demo_task);
    if origin.finish(std::time::Duration::from_secs(10)).await {
        info!("origin: every published segment is stored");
    }
    if let Some(t) = push_task {
        // The pusher's tasks stop at the shutdown signal (a request in flight is
        // abandoned; docs/push.md, "Not yet"): this only waits for them to go.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), t).await;
    }
    if let Err(e) = http_task.await {
        error!(error = %e, "HTTP server task failed");
    }
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    let _ = event_task.await;
    if let Some(t) = thumbnail_task {
        let _ = t.await;
    }
    if let Some(t) = ladder_task {
        let _ = t.await;
    }
    let _ = reframe_task.await;
    stream_hooks.abort();
    webhooks.shutdown().await;
    info!("bye");
    Ok(())
}

/// `/metrics` on a listener of its own (`[server] metrics_listen`), e.g. a private
/// interface that only the monitoring network reaches.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    state: http::AppState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics on {addr}"))?;
    info!(addr = %listener.local_addr()?, "metrics listening");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, http::metrics_router(state))
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            error!(error = %e, "metrics server failed");
        }
    }))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_flag_is_seen_by_the_checks_of_the_sections_it_needs() {
        let dir = std::env::temp_dir().join(format!("starling-roles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("edge.toml");
        std::fs::write(&file, "[edge]\norigin = \"http://10.1.2.3:8080\"\n").unwrap();
        let args = |roles: Option<&str>| ServeArgs {
            config: Some(file.clone()),
            rtmp_listen: None,
            http_listen: None,
            data_dir: None,
            roles: roles.map(str::to_owned),
            log_format: None,
        };
        let config = args(Some("edge")).load().unwrap();
        assert_eq!(config.roles().unwrap(), roles::Roles::EDGE_ONLY);
        // Without the flag the same file is a node with every role, which has no use for
        // an edge origin: refused with the reason.
        let err = format!("{:#}", args(None).load().unwrap_err());
        assert!(
            err.contains("edge.origin is for a node without the origin role"),
            "{err}"
        );
    }
}
