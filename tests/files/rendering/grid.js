// Fills #itemsBlock as the shop's category script does once its data arrives, and counts the
// render's looks at the page.
// data-batches="300:3,1800:3": three items after 300 ms, three more after 1800 ms.
// data-on-poll="1:1,25:3": one item at the render's first look, three more at its 25th, added
// before that look counts them. A look is a call of document.querySelectorAll (each poll of the
// middleware makes one); <body data-polls> says how many there were, so a test can count looks
// instead of timing them.
(function () {
  var block = document.getElementById("itemsBlock");
  var made = 0;
  function addItems(count) {
    for (var i = 0; i < count; i++) {
      made += 1;
      var cell = document.createElement("div");
      cell.className = "product-cell";
      cell.innerHTML = '<div class="product-item"><div class="name"><a href="/Ornament-' +
        made + "_p_" + made + '.html">Ornament ' + made + "</a></div></div>";
      block.appendChild(cell);
    }
  }
  function steps(text) {
    return (text || "").split(",").filter(Boolean).map(function (step) {
      return step.split(":").map(Number);
    });
  }
  var data = block ? block.dataset : {};
  steps(data.batches).forEach(function (batch) {
    setTimeout(function () { addItems(batch[1]); }, batch[0]);
  });
  var onPoll = {};
  steps(data.onPoll).forEach(function (step) { onPoll[step[0]] = step[1]; });
  var looks = 0;
  var querySelectorAll = document.querySelectorAll;
  document.body.dataset.polls = "0";
  document.querySelectorAll = function () {
    looks += 1;
    document.body.dataset.polls = String(looks);
    addItems(onPoll[looks] || 0);
    return querySelectorAll.apply(document, arguments);
  };
})();
