// Rotating the model-signing key asks first, and says what revoking the current key means
// (a script file, not an inline handler: the CSP allows no inline script).
const form = document.getElementById("rotate-keys-form");
if (form) {
  form.addEventListener("submit", (event) => {
    const revoke = form.querySelector("input[name=revoke_previous]").checked;
    const message = revoke
      ? `Rotate the model-signing key and REVOKE the current key ${form.dataset.activeKey}? Every node will refuse models it signed.`
      : "Rotate the model-signing key? New models will be signed with a new key; the current one stays trusted.";
    if (!window.confirm(message)) event.preventDefault();
  });
}
