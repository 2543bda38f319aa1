// Runs before the stylesheet paints, so a light-theme user never sees a dark flash.
try {
  if (localStorage.getItem("teckochecker-theme") === "light") {
    document.documentElement.dataset.theme = "light";
  }
} catch (e) {
  /* storage disabled: keep the default theme */
}
