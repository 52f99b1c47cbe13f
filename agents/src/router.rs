//! [`Router`]: picks a chain or agent for an input by a model's classification, with its
//! [`Route`]s, builder, output and errors.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Chain, ChatModel, ChatRequest, Error, Message, Result};

use crate::executor::AgentExecutor;

/// One destination of a [`Router`].
#[derive(Clone)]
pub struct Route {
    name: String,
    description: String,
    target: Arc<dyn Chain<String, String>>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A route called `name` (what the model answers with), described to the model by
    /// `description`, that runs `target`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        target: Arc<dyn Chain<String, String>>,
    ) -> Self {
        Route {
            name: name.into(),
            description: description.into(),
            target,
        }
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route's description.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// What a [`Router`] did with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterOutput {
    /// The name of the route taken (the default route's name when the answer named none).
    pub route: String,
    /// The target's output.
    pub output: String,
    /// Whether the default route was taken because the model's answer named no route.
    pub defaulted: bool,
}

/// Why a [`Router`] could not route an input. Converted into [`Error::Other`] with this
/// value as the `source`; [`RouterError::from_error`] gets it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The model's answer named no route and the router has no default route.
    #[error("the router's model answered {:?}, which names none of the routes ({}), and there is no default route", answer.chars().take(200).collect::<String>(), routes.join(", "))]
    UnknownRoute {
        /// The model's answer, as written.
        answer: String,
        /// The names of the routes.
        routes: Vec<String>,
    },
}

impl RouterError {
    /// The router error kept inside a core [`Error`], if it is one.
    pub fn from_error(error: &Error) -> Option<&RouterError> {
        match error {
            Error::Other {
                source: Some(source),
                ..
            } => source.downcast_ref::<RouterError>(),
            _ => None,
        }
    }
}

impl From<RouterError> for Error {
    fn from(e: RouterError) -> Self {
        Error::Other {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Routes each input to one of its [`Route`]s: picks a chain or agent for an input by a
/// model's classification.
///
/// The router sends the model one prompt listing each [`Route`]'s name and description and
/// asking for only the name of the best route. The answer is read leniently (first line,
/// surrounding whitespace, quotes, backticks, emphasis and punctuation removed,
/// case-insensitive), then the chosen route's target runs on the original input. An answer
/// that names no route goes to the default route when there is one, and is otherwise a
/// [`RouterError::UnknownRoute`]. The result says which route was taken
/// ([`RouterOutput`]).
///
/// Targets are `Arc<dyn Chain<String, String>>`. Both agents are such chains:
/// [`AgentExecutor`] and [`ReactAgent`](crate::ReactAgent) implement
/// `Chain<String, String>`, returning the final answer.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::{Route, Router};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{chain_fn, Chain, ChainExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let math = chain_fn(|s: String| async move { Ok(format!("math: {s}")) }).boxed();
/// let chat = chain_fn(|s: String| async move { Ok(format!("chat: {s}")) }).boxed();
/// let model = Arc::new(ScriptedChatModel::new().with_text("  'Math'. "));
/// let router = Router::builder(model.clone())
///     .route(Route::new("math", "Arithmetic and algebra questions.", math))
///     .route(Route::new("chat", "Small talk.", chat))
///     .default_route("chat")
///     .build()?;
/// let out = router.invoke("2+2?".to_string()).await?;
/// assert_eq!(out.route, "math");
/// assert_eq!(out.output, "math: 2+2?");
/// assert!(model.requests()[0].messages[0].text().contains("math: Arithmetic and algebra"));
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Router {
    model: Arc<dyn ChatModel>,
    routes: Vec<Route>,
    default: Option<usize>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("model", &self.model.model_info().model)
            .field("routes", &self.routes)
            .field(
                "default",
                &self
                    .default
                    .and_then(|i| self.routes.get(i))
                    .map(Route::name),
            )
            .finish()
    }
}

/// Builds a [`Router`]; start with [`Router::builder`].
pub struct RouterBuilder {
    model: Arc<dyn ChatModel>,
    routes: Vec<Route>,
    default: Option<String>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("routes", &self.routes)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Adds a route. Default: no routes (at least one is required).
    #[must_use]
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Names the route taken when the model's answer names none. It must be one of the
    /// routes. Default: none, so such an answer is a [`RouterError::UnknownRoute`].
    #[must_use]
    pub fn default_route(mut self, name: impl Into<String>) -> Self {
        self.default = Some(name.into());
        self
    }

    /// Checks the configuration and builds the router.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when there are no routes, a route name is empty or not
    /// unique (ignoring case), or the default route is not one of the routes.
    pub fn build(self) -> Result<Router> {
        if self.routes.is_empty() {
            return Err(Error::invalid_config("a router needs at least one route"));
        }
        let mut seen = HashSet::new();
        for r in &self.routes {
            let key = normalize(&r.name).to_lowercase();
            if key.is_empty() {
                return Err(Error::invalid_config(format!(
                    "route name {:?} is empty once trimmed",
                    r.name
                )));
            }
            if !seen.insert(key) {
                return Err(Error::invalid_config(format!(
                    "two routes are named `{}`",
                    r.name
                )));
            }
        }
        let default = match &self.default {
            None => None,
            Some(name) => Some(
                self.routes
                    .iter()
                    .position(|r| &r.name == name)
                    .ok_or_else(|| {
                        Error::invalid_config(format!(
                            "default route `{name}` is not one of the routes"
                        ))
                    })?,
            ),
        };
        Ok(Router {
            model: self.model,
            routes: self.routes,
            default,
        })
    }
}

/// Trims whitespace and the quotes, backticks, emphasis and punctuation a model tends to
/// put around a one-word answer.
fn normalize(s: &str) -> &str {
    s.trim_matches(|c: char| {
        c.is_whitespace() || (c.is_ascii_punctuation() && c != '_' && c != '-')
    })
}

impl Router {
    /// Starts a builder for a router whose classifier is `model`.
    pub fn builder(model: Arc<dyn ChatModel>) -> RouterBuilder {
        RouterBuilder {
            model,
            routes: Vec::new(),
            default: None,
        }
    }

    /// The routes, in the order they were added.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The classification prompt sent for `input`.
    pub fn render_prompt(&self, input: &str) -> String {
        let mut p =
            String::from("Choose the route that best fits the input below. The routes are:\n\n");
        for r in &self.routes {
            let _ = writeln!(p, "{}: {}", r.name, r.description);
        }
        let _ = write!(
            p,
            "\nAnswer with only the name of one route, exactly as written above, and nothing \
             else.\n\nInput: {input}\n\nRoute:"
        );
        p
    }

    /// The route an answer of the model names, read leniently (see the
    /// [`Router`] docs); `None` when it names none.
    pub fn parse_route(&self, answer: &str) -> Option<&Route> {
        let first = answer.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut candidate = normalize(first);
        // A model may echo the prompt's trailing `Route:` label.
        if let Some(rest) = candidate
            .get(..6)
            .filter(|h| h.eq_ignore_ascii_case("route:"))
            .and_then(|_| candidate.get(6..))
        {
            candidate = normalize(rest);
        }
        self.routes
            .iter()
            .find(|r| normalize(&r.name).eq_ignore_ascii_case(candidate))
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| normalize(&r.name).to_lowercase() == candidate.to_lowercase())
            })
    }

    /// Asks the model to classify `input`, then runs the chosen route's target on it.
    ///
    /// # Errors
    /// The model's errors; [`RouterError::UnknownRoute`] (inside [`Error::Other`]) when the
    /// answer names no route and there is no default; the target's errors.
    pub async fn route(&self, input: String) -> Result<RouterOutput> {
        let request = ChatRequest::new(vec![Message::user(self.render_prompt(&input))]);
        let answer = self.model.generate(request).await?.text();
        let (route, defaulted) = match self.parse_route(&answer) {
            Some(r) => (r, false),
            None => {
                let Some(r) = self.default.and_then(|i| self.routes.get(i)) else {
                    return Err(RouterError::UnknownRoute {
                        answer,
                        routes: self.routes.iter().map(|r| r.name.clone()).collect(),
                    }
                    .into());
                };
                tracing::debug!(%answer, route = %r.name, "router answer named no route; using the default");
                (r, true)
            }
        };
        let output = route.target.invoke(input).await?;
        Ok(RouterOutput {
            route: route.name.clone(),
            output,
            defaulted,
        })
    }
}

#[async_trait]
impl Chain<String, RouterOutput> for Router {
    async fn invoke(&self, input: String) -> Result<RouterOutput> {
        self.route(input).await
    }
}

/// Runs the agent and returns its final answer; the steps are dropped. This makes an
/// agent a [`Route`] target.
#[async_trait]
impl Chain<String, String> for AgentExecutor {
    async fn invoke(&self, input: String) -> Result<String> {
        Ok(self.run(&input).await?.output)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_strips_decoration() {
        assert_eq!(normalize("  'Math'. "), "Math");
        assert_eq!(normalize("**`web-search`**"), "web-search");
        assert_eq!(normalize("\"ü\""), "ü");
        assert_eq!(normalize("..."), "");
    }
}
