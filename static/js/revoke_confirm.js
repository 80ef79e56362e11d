// Revoking a node asks first (a script file, not an inline handler: the CSP allows no inline script).
for (const form of document.querySelectorAll("form.revoke-form")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(`Revoke node ${form.dataset.node}? It will be disconnected and cannot reconnect.`)) event.preventDefault();
  });
}
