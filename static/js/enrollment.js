// Copy the one-time enrollment command to the clipboard.
const button = document.getElementById("copy-command");
if (button) {
  button.addEventListener("click", async () => {
    const text = document.getElementById(button.dataset.target).textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (err) {
      console.warn("clipboard unavailable; select the command by hand", err);
      button.textContent = "Select and copy by hand";
    }
  });
}
