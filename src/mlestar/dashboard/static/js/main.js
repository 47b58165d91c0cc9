// Entry point: picks the page from the URL path.

import { comparePage } from "./compare.js";
import { runsPage } from "./list.js";
import { runPage } from "./run.js";

function route() {
  const root = document.getElementById("app");
  const path = location.pathname;
  const run = path.match(/^\/runs\/([^/]+)\/?$/);
  if (run) return runPage(root, decodeURIComponent(run[1]));
  if (path === "/compare") return comparePage(root);
  return runsPage(root);
}

route();
