//! Gemini on Vertex AI against loopback servers: the Vertex URL shape and bearer tokens,
//! a token endpoint that checks the service-account JWT, token caching and refresh, and
//! `:predict` embeddings (payloads modelled on Google's Vertex AI and OAuth 2.0 references).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use catena_core::test_utils::{embedder_conformance, ChatModelConformance, DeterministicEmbedder};
use catena_core::{ChatModel, ChatRequest, Embedder, Message, ProviderErrorKind};
use catena_llms::gemini::{
    credentials_from_json, AuthorizedUserTokenSource, GeminiChatModel, GeminiEmbedder,
    ServiceAccountTokenSource, StaticToken, TokenSource,
};
use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};
use support::{data, fast_http};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PROJECT: &str = "catena-test-project";
const GENERATE: &str =
    "/v1/projects/catena-test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn text_reply() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"candidates": [{"content": {"role": "model",
        "parts": [{"text": "Hello from Vertex."}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash"}))
}

fn vertex_chat(server: &str, source: impl TokenSource + 'static) -> GeminiChatModel {
    GeminiChatModel::builder()
        .vertex(PROJECT, "us-central1")
        .base_url(format!("{server}/v1"))
        .token_source(source)
        .http(fast_http())
        .build()
        .unwrap()
}

fn service_account(token_server: &str) -> ServiceAccountTokenSource {
    ServiceAccountTokenSource::from_json(&data("gemini/test-only-service-account.json"))
        .unwrap()
        .with_token_uri(format!("{token_server}/token"))
}

/// The form fields of a token request.
fn form_of(req: &Request) -> Vec<(String, String)> {
    let body = std::str::from_utf8(&req.body).unwrap();
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            let decode = |s: &str| {
                let mut out = Vec::new();
                let bytes = s.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(
                            u8::from_str_radix(
                                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(),
                                16,
                            )
                            .unwrap(),
                        );
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn form_field(req: &Request, name: &str) -> String {
    form_of(req).into_iter().find(|(k, _)| k == name).unwrap().1
}

/// The public half of the test key, in the DER form `UnparsedPublicKey` takes.
fn test_public_key() -> Vec<u8> {
    let pem = data("gemini/test-only-rsa-key.pem");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).unwrap();
    RsaKeyPair::from_pkcs8(&der)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec()
}

/// Issues `tok-1`, `tok-2`, ... with the given lifetime.
struct TokenEndpoint {
    issued: Arc<AtomicUsize>,
    expires_in: u64,
    delay: Duration,
}

impl Respond for TokenEndpoint {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": format!("ya29.tok-{n}"), "expires_in": self.expires_in, "token_type": "Bearer"}))
            .set_delay(self.delay)
    }
}

async fn token_endpoint(expires_in: u64, delay: Duration) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let issued = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(TokenEndpoint {
            issued: issued.clone(),
            expires_in,
            delay,
        })
        .mount(&server)
        .await;
    (server, issued)
}

#[tokio::test]
async fn vertex_url_shape_and_bearer_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .and(header("authorization", "Bearer ya29.static"))
        .respond_with(text_reply())
        .expect(1)
        .mount(&server)
        .await;
    let model = vertex_chat(&server.uri(), StaticToken::new("ya29.static"));
    let r = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap();
    assert_eq!(r.text(), "Hello from Vertex.");
    let req = &server.received_requests().await.unwrap()[0];
    assert!(req.headers.get("x-goog-api-key").is_none());
    assert_eq!(
        body_of(req)["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
    assert_eq!(model.model_info().provider, "vertex");
    assert!(!format!("{model:?}").contains("ya29"), "{model:?}");

    // Streams go to `:streamGenerateContent?alt=sse` under the same path.
    let stream_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE.replace(":generateContent", ":streamGenerateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]},\"finishReason\":\"STOP\"}]}\n\n",
            "text/event-stream",
        ))
        .mount(&stream_server)
        .await;
    let model = vertex_chat(&stream_server.uri(), StaticToken::new("ya29.static"));
    let r = catena_core::collect_stream(
        model
            .stream(ChatRequest::new(vec![Message::user("hi")]))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.text(), "Hi");
    assert_eq!(
        stream_server.received_requests().await.unwrap()[0]
            .url
            .query(),
        Some("alt=sse")
    );
}

#[test]
fn default_vertex_hosts() {
    let model = |location: &str| {
        GeminiChatModel::builder()
            .vertex("p", location)
            .token_source(StaticToken::new("t"))
            .build()
            .unwrap()
    };
    let debug = format!("{:?}", model("europe-west4"));
    assert!(debug.contains("https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/publishers/google"), "{debug}");
    let debug = format!("{:?}", model("global"));
    assert!(
        debug.contains(
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google"
        ),
        "{debug}"
    );
    assert!(GeminiChatModel::builder()
        .vertex("", "us-central1")
        .token_source(StaticToken::new("t"))
        .build()
        .is_err());
}

#[tokio::test]
async fn service_account_jwt_is_signed_and_the_token_cached() {
    let (tokens, issued) = token_endpoint(3600, Duration::ZERO).await;
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(text_reply())
        .mount(&api)
        .await;
    let model = vertex_chat(&api.uri(), service_account(&tokens.uri()));
    model
        .generate(ChatRequest::new(vec![Message::user("one")]))
        .await
        .unwrap();
    model
        .generate(ChatRequest::new(vec![Message::user("two")]))
        .await
        .unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "two calls, one token request"
    );
    for req in api.received_requests().await.unwrap() {
        assert_eq!(
            req.headers.get("authorization").unwrap(),
            "Bearer ya29.tok-1"
        );
    }

    let token_req = &tokens.received_requests().await.unwrap()[0];
    assert_eq!(
        form_field(token_req, "grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = form_field(token_req, "assertion");
    let segments: Vec<&str> = jwt.split('.').collect();
    assert_eq!(segments.len(), 3);
    let signed = format!("{}.{}", segments[0], segments[1]);
    let signature = URL_SAFE_NO_PAD.decode(segments[2]).unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, test_public_key())
        .verify(signed.as_bytes(), &signature)
        .expect("the JWT is signed with the service account's key");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-id-0001"})
    );
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[1]).unwrap()).unwrap();
    assert_eq!(
        claims["iss"],
        "catena-test@catena-test-project.iam.gserviceaccount.com"
    );
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(claims["aud"], format!("{}/token", tokens.uri()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat <= now && now - iat < 60, "iat {iat} vs now {now}");
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed() {
    let (tokens, issued) = token_endpoint(60, Duration::ZERO).await;
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(text_reply())
        .mount(&api)
        .await;
    let model = vertex_chat(&api.uri(), service_account(&tokens.uri()));
    model
        .generate(ChatRequest::new(vec![Message::user("one")]))
        .await
        .unwrap();
    model
        .generate(ChatRequest::new(vec![Message::user("two")]))
        .await
        .unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "a token with 60 s left is replaced"
    );
    let auth: Vec<_> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(auth, ["Bearer ya29.tok-1", "Bearer ya29.tok-2"]);
}

#[tokio::test]
async fn concurrent_calls_share_one_refresh() {
    let (tokens, issued) = token_endpoint(3600, Duration::from_millis(100)).await;
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(text_reply())
        .mount(&api)
        .await;
    let model = Arc::new(vertex_chat(&api.uri(), service_account(&tokens.uri())));
    let calls = (0..8).map(|_| {
        let model = model.clone();
        tokio::spawn(async move {
            model
                .generate(ChatRequest::new(vec![Message::user("hi")]))
                .await
                .unwrap()
        })
    });
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    assert_eq!(api.received_requests().await.unwrap().len(), 8);
}

#[tokio::test]
async fn token_endpoint_rejection_is_an_auth_error() {
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})))
        .mount(&tokens)
        .await;
    let api = MockServer::start().await;
    let model = vertex_chat(&api.uri(), service_account(&tokens.uri()));
    let e = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{e}");
    assert!(
        e.to_string().contains("The OAuth client was not found."),
        "{e}"
    );
    assert!(
        api.received_requests().await.unwrap().is_empty(),
        "no API call without a token"
    );
    assert_eq!(
        tokens.received_requests().await.unwrap().len(),
        1,
        "auth failures are not retried"
    );
    // Nothing of the key or the signed assertion leaks.
    let key = data("gemini/test-only-service-account.json");
    let key: Value = serde_json::from_str(&key).unwrap();
    let key_body: String = key["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let jwt = form_field(&tokens.received_requests().await.unwrap()[0], "assertion");
    for text in [format!("{e}"), format!("{e:?}"), format!("{model:?}")] {
        for secret in [&key_body, &jwt] {
            for i in (0..secret.len() - 16).step_by(16) {
                assert!(!text.contains(&secret[i..i + 16]), "leak in {text}");
            }
        }
    }

    // A 200 without a token is an auth error too.
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer"})))
        .mount(&tokens)
        .await;
    let e = vertex_chat(&api.uri(), service_account(&tokens.uri()))
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::Auth));
}

#[tokio::test]
async fn authorized_user_refresh_token_grant() {
    let (tokens, issued) = token_endpoint(3599, Duration::ZERO).await;
    let creds = json!({"type": "authorized_user", "client_id": "123.apps.googleusercontent.com",
        "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty", "refresh_token": "1//0eRefresh/Token+with=chars",
        "token_uri": format!("{}/token", tokens.uri())});
    let source = credentials_from_json(&creds.to_string()).unwrap();
    let token = source.token().await.unwrap();
    assert_eq!(token.token.expose_secret(), "ya29.tok-1");
    assert!(token.expires_at.unwrap() > SystemTime::now() + Duration::from_secs(3000));
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    let req = &tokens.received_requests().await.unwrap()[0];
    assert_eq!(
        form_of(req),
        [
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            (
                "client_id".to_owned(),
                "123.apps.googleusercontent.com".to_owned()
            ),
            (
                "client_secret".to_owned(),
                "d-FL95Q19q7MQmFpd7hHD0Ty".to_owned()
            ),
            (
                "refresh_token".to_owned(),
                "1//0eRefresh/Token+with=chars".to_owned()
            ),
        ]
    );
    let explicit = AuthorizedUserTokenSource::new("id", "secret", "refresh").unwrap();
    assert!(
        !format!("{explicit:?}").contains("secret\""),
        "{explicit:?}"
    );
    assert!(credentials_from_json(&data("gemini/test-only-service-account.json")).is_ok());
}

#[tokio::test]
async fn application_default_credentials_from_the_environment() {
    let path = format!(
        "{}/tests/data/gemini/test-only-service-account.json",
        env!("CARGO_MANIFEST_DIR")
    );
    // The only test in this binary that touches the environment.
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &path);
    let model = GeminiChatModel::builder()
        .vertex(PROJECT, "us-central1")
        .build();
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/creds.json");
    let missing = GeminiChatModel::builder()
        .vertex(PROJECT, "us-central1")
        .build();
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    assert!(model.is_ok());
    assert!(missing.is_err());
}

fn embed_values(text: &str) -> Vec<f32> {
    let mut v = DeterministicEmbedder::new(16).embed(text);
    v[0] += 0.01;
    v
}

/// Answers Vertex AI `:predict` for text-embedding models.
struct PredictServer;

impl Respond for PredictServer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = body_of(req);
        let instances = body["instances"].as_array().unwrap();
        assert!(instances.len() <= 250);
        let predictions: Vec<Value> = instances
            .iter()
            .map(|i| {
                json!({"embeddings": {"values": embed_values(i["content"].as_str().unwrap()),
                                           "statistics": {"truncated": false, "token_count": 6}}})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(
            json!({"predictions": predictions, "metadata": {"billableCharacterCount": 42}}),
        )
    }
}

fn vertex_embedder(server: &str) -> GeminiEmbedder {
    GeminiEmbedder::builder()
        .vertex(PROJECT, "us-central1")
        .base_url(format!("{server}/v1"))
        .token_source(StaticToken::new("ya29.static"))
        .model("text-embedding-005")
        .output_dimensionality(16)
        .http(fast_http())
        .build()
        .unwrap()
}

#[tokio::test]
async fn vertex_embeddings_via_predict() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/catena-test-project/locations/us-central1/publishers/google/models/text-embedding-005:predict"))
        .and(header("authorization", "Bearer ya29.static"))
        .respond_with(PredictServer)
        .mount(&server)
        .await;
    let e = vertex_embedder(&server.uri());
    let texts: Vec<String> = (0..300).map(|i| format!("doc {i}")).collect();
    let v = e.embed_documents(&texts).await.unwrap();
    assert_eq!(v.len(), 300);
    assert_eq!(v[299], embed_values("doc 299"));
    let reqs = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| body_of(r)["instances"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [250, 50]);
    assert_eq!(
        body_of(&reqs[1])["instances"][0],
        json!({"content": "doc 250", "task_type": "RETRIEVAL_DOCUMENT"})
    );
    assert_eq!(
        body_of(&reqs[1])["parameters"],
        json!({"outputDimensionality": 16})
    );
    e.embed_query("a question").await.unwrap();
    let q = body_of(&server.received_requests().await.unwrap()[2]);
    assert_eq!(
        q["instances"],
        json!([{"content": "a question", "task_type": "RETRIEVAL_QUERY"}])
    );

    // gemini-embedding-001 takes one text per request on Vertex AI.
    let g = GeminiEmbedder::builder()
        .vertex(PROJECT, "us-central1")
        .base_url(format!("{}/v1", server.uri()))
        .token_source(StaticToken::new("t"))
        .build()
        .unwrap();
    assert_eq!(g.dimensions(), 3072);
    assert!(format!("{g:?}").contains("batch_size: 1"), "{g:?}");
}

/// Answers the chat conformance suite (see tests/gemini.rs for the API-key twin).
struct ConformanceServer;

impl Respond for ConformanceServer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = body_of(req);
        let last = body["contents"].as_array().unwrap().last().unwrap().clone();
        let parts = if last["parts"][0].get("functionResponse").is_some() {
            json!([{"text": "It is 18°C and sunny in Paris."}])
        } else if body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY" {
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
        } else {
            json!([{"text": "Hello there, friend."}])
        };
        let usage =
            json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15});
        if req.url.path().contains(":streamGenerateContent") {
            let c1 = json!({"candidates": [{"content": {"role": "model", "parts": parts}}], "modelVersion": "gemini-test"});
            let c2 = json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}],
                            "usageMetadata": usage, "modelVersion": "gemini-test"});
            ResponseTemplate::new(200)
                .set_body_raw(format!("data: {c1}\n\ndata: {c2}\n\n"), "text/event-stream")
        } else {
            ResponseTemplate::new(200).set_body_json(
                json!({"candidates": [{"content": {"role": "model", "parts": parts},
                "finishReason": "STOP"}], "usageMetadata": usage, "modelVersion": "gemini-test"}),
            )
        }
    }
}

#[tokio::test]
async fn chat_conformance_on_vertex() {
    let (tokens, issued) = token_endpoint(3600, Duration::ZERO).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ConformanceServer)
        .mount(&server)
        .await;
    ChatModelConformance::new()
        .deterministic(true)
        .run(&vertex_chat(&server.uri(), service_account(&tokens.uri())))
        .await;
    assert_eq!(issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn embedder_conformance_on_vertex() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(PredictServer)
        .mount(&server)
        .await;
    embedder_conformance(&vertex_embedder(&server.uri())).await;
}
