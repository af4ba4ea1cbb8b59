#pragma once
// WebUi: the read-only web UI on the daemon's TCP listener (docs/ui.md).
//
//   /ui/, /ui/dags/D, /ui/runs/R, /ui/dead-letters, /ui/logs/R   the page (one HTML file)
//   /ui/static/NAME                                               its CSS and JavaScript
//   /ui/api/v1/...                                                the control API's GET routes
//   /ui/graph/D.svg                                               DAG D's task graph (Graphviz;
//                                                                 202 while it is laid out)
//
// Everything is compiled in. The data routes are the control API's own handlers, reached
// with GET only, so nothing the UI serves can change state. With a token configured, data
// routes need "Authorization: Bearer TOKEN"; without one the UI is served only on a
// loopback listener, and only to requests addressed to localhost or an IP address, so that
// a web page elsewhere cannot reach it through DNS rebinding.
//
// Thread rules: called on the daemon's loop thread, as the control API is.

#include <functional>
#include <optional>
#include <string>

#include "api/http.h"
#include "dag/dag.h"
#include "ui/dag_graph.h"

namespace batchd::ui {

struct WebUiOptions {
  bool enabled = true;        // config ui.enabled
  std::string token;          // config ui.token / ui.token_file; empty: none
  std::string listen_address; // config http, e.g. "127.0.0.1:9464"
};

// Whether "HOST:PORT" binds a loopback address only (127.0.0.0/8, ::1 or localhost).
bool IsLoopbackAddress(const std::string& listen_address);

class WebUi {
 public:
  using ReadApi = std::function<api::HttpResponse(const api::HttpRequest&)>;
  using FindDag = std::function<dag::DagPtr(const std::string& name)>;

  WebUi(WebUiOptions options, ReadApi read_api, FindDag find_dag);

  // Why the UI is off, or empty when it is served.
  const std::string& off_reason() const { return off_reason_; }

  // A reloaded config's ui.enabled and token (SIGHUP): a rotated token holds from the next
  // request on; the listener's address cannot change without a restart.
  void Reconfigure(bool enabled, std::string token);

  // The response to a GET or HEAD of `request.target`, or nullopt when the path is not the
  // UI's ("/" redirects to "/ui/").
  std::optional<api::HttpResponse> Handle(const api::HttpRequest& request);

 private:
  api::HttpResponse Page();
  api::HttpResponse Static(const std::string& name);
  api::HttpResponse Graph(const std::string& file);
  // The refusal of a request without the right token or to a foreign Host, or nullopt.
  std::optional<api::HttpResponse> Refusal(const api::HttpRequest& request);

  WebUiOptions options_;
  ReadApi read_api_;
  FindDag find_dag_;
  std::string off_reason_;
  DagGraphRenderer graphs_;
};

}  // namespace batchd::ui
