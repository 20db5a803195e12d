//! The network calls: one pooled HTTP/1.1 client (hyper 1 + rustls with
//! ring, the stack the AWS SDK already builds), authentication (basic, API
//! key, SigV4 with cached credentials) and a request with a time limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{Auth, Endpoint};
use crate::error::{chain, EsError};

/// How requests are authenticated.
enum Authenticator {
    None,
    /// A fixed `Authorization` header (basic or API key).
    Header(HeaderValue),
    /// SigV4.
    Aws(AwsSigner),
}

struct AwsSigner {
    provider: SharedCredentialsProvider,
    region: String,
    service: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl AwsSigner {
    /// Credentials from the cache, refreshed 5 minutes before they expire
    /// (the SDK config's provider itself does not cache).
    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = match credentials.expiry() {
                None => true,
                Some(expiry) => expiry > SystemTime::now() + Duration::from_secs(300),
            };
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self.provider.provide_credentials().await.map_err(|e| chain(&e))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
}

/// The cluster's HTTP API.
pub struct Service {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Endpoint,
    authenticator: Authenticator,
    timeout: Duration,
}

impl Service {
    /// A client for `endpoint`. With `auth.strategy = "aws"` this loads the
    /// AWS configuration (credentials are fetched on the first request).
    ///
    /// # Errors
    /// [`EsError::Setup`] when TLS cannot be set up or a header is invalid.
    pub async fn new(endpoint: Endpoint, auth: Option<&Auth>, timeout: Duration) -> Result<Service, EsError> {
        let setup = |message: String| EsError::Setup { endpoint: endpoint.base(), message };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if endpoint.scheme == "https" {
            builder.with_provider_and_native_roots(provider).map_err(|e| setup(format!("no usable CA certificates: {e}")))?
        } else {
            // Plain HTTP: no certificates needed (a TLS config is still required by the type).
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| setup(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        let authenticator = match auth {
            None => Authenticator::None,
            Some(Auth::Basic { user, password }) => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Authenticator::Header(secret_header(&format!("Basic {token}")).map_err(setup)?)
            }
            Some(Auth::ApiKey { api_key }) => Authenticator::Header(secret_header(&format!("ApiKey {}", api_key.trim())).map_err(setup)?),
            Some(Auth::Aws { region, service, profile }) => {
                let connection = shardline_aws::AwsConnection { region: region.clone(), profile: profile.clone(), ..Default::default() };
                let sdk = shardline_aws::load_sdk_config(&connection).await;
                let provider = sdk.credentials_provider().ok_or_else(|| setup("no AWS credentials provider".to_owned()))?;
                let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| shardline_aws::DEFAULT_REGION.to_owned());
                Authenticator::Aws(AwsSigner { provider, region, service: service.clone(), cached: tokio::sync::Mutex::new(None) })
            }
        };
        Ok(Service { client, endpoint, authenticator, timeout })
    }

    /// The cluster's base URL, for messages.
    pub fn endpoint(&self) -> String {
        self.endpoint.base()
    }

    /// Sends one request and reads the whole answer.
    ///
    /// # Errors
    /// [`EsError::Connect`], [`EsError::Timeout`] or [`EsError::Signing`];
    /// HTTP error statuses are returned as answers.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; the cluster may still
    /// apply it (bulk requests are idempotent with deterministic ids).
    pub async fn request(&self, method: http::Method, path_and_query: &str, body: Bytes, gzipped: bool) -> Result<Answer, EsError> {
        let what = format!("{method} {path_and_query}");
        let url = self.endpoint.url(path_and_query);
        let connect_error = |message: String| EsError::Connect { endpoint: self.endpoint.base(), what: what.clone(), message };
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(HOST, self.endpoint.authority.as_str())
            .body(Full::new(body.clone()))
            .map_err(|e| connect_error(format!("cannot build the request: {e}")))?;
        let headers = request.headers_mut();
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        }
        if gzipped {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        match &self.authenticator {
            Authenticator::None => {}
            Authenticator::Header(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
            Authenticator::Aws(signer) => self.sign(signer, &mut request, &body).await?,
        }
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| connect_error(chain(&e)))?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| connect_error(format!("reading the answer: {}", chain(&e))))?;
            Ok(Answer { status, body: body.to_bytes() })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(EsError::Timeout { endpoint: self.endpoint.base(), what, timeout: self.timeout }),
        }
    }

    async fn sign(&self, signer: &AwsSigner, request: &mut http::Request<Full<Bytes>>, body: &[u8]) -> Result<(), EsError> {
        use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
        let signing = |message: String| EsError::Signing { endpoint: self.endpoint.base(), message };
        let credentials = signer.credentials().await.map_err(signing)?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        // Amazon OpenSearch Serverless requires the payload hash header.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&signer.region)
            .name(&signer.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| signing(e.to_string()))?
            .into();
        let headers: Vec<(&str, &str)> =
            request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(request.method().as_str(), &uri, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|e| signing(e.to_string()))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// `GET /`: the cluster answers and takes the credentials.
    ///
    /// # Errors
    /// Retriable when it cannot be reached or answers 5xx/429; permanent
    /// when it refuses the credentials (401/403) or answers another error.
    pub async fn healthcheck(&self) -> Result<(), EsError> {
        let answer = self.request(http::Method::GET, "/", Bytes::new(), false).await?;
        match answer.status {
            200..=299 => Ok(()),
            // Amazon OpenSearch Serverless has no `GET /`; reaching it with
            // accepted credentials is all that can be checked.
            404 if matches!(&self.authenticator, Authenticator::Aws(s) if s.service == "aoss") => Ok(()),
            401 | 403 => Err(EsError::CredentialsRefused { endpoint: self.endpoint.base(), status: answer.status, body: body_start(&answer.body) }),
            status => Err(EsError::Status { endpoint: self.endpoint.base(), what: "GET / (healthcheck)".to_owned(), status, body: body_start(&answer.body) }),
        }
    }
}

fn secret_header(value: &str) -> Result<HeaderValue, String> {
    let mut header = HeaderValue::from_str(value).map_err(|_| "the credentials hold characters not allowed in an HTTP header".to_owned())?;
    header.set_sensitive(true);
    Ok(header)
}

/// The start of a body, for messages.
pub fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]).trim().to_owned();
    if body.len() > 500 {
        format!("{text}...")
    } else {
        text
    }
}
