// Draws every chart of the report from the specs embedded in #charts (no network).
// ast: Vega interprets its expressions instead of compiling them with Function(),
// so the page's Content-Security-Policy needs no 'unsafe-eval'.
// tooltip: false keeps Vega's plain title tooltips; vega-tooltip would inject a <style>.
(function () {
  "use strict";
  var specs = JSON.parse(document.getElementById("charts").textContent);
  var drawn = Array.prototype.map.call(document.querySelectorAll("[data-chart]"), function (el) {
    return vegaEmbed(el, specs[el.getAttribute("data-chart")],
                     {renderer: "svg", actions: false, ast: true, defaultStyle: false, tooltip: false})
      .catch(function (error) {
        el.textContent = "This chart could not be drawn: " + error;
        console.error(error);
      });
  });
  Promise.all(drawn).then(function () {
    document.documentElement.setAttribute("data-charts", "drawn");
  });
})();
