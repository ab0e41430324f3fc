// Fills #itemsBlock in timed batches, as the shop's category script does once its data arrives.
// data-batches="300:3,1800:3": three items after 300 ms, three more after 1800 ms.
(function () {
  var block = document.getElementById("itemsBlock");
  var made = 0;
  (block.dataset.batches || "").split(",").filter(Boolean).forEach(function (batch) {
    var parts = batch.split(":").map(Number);
    setTimeout(function () {
      for (var i = 0; i < parts[1]; i++) {
        made += 1;
        var cell = document.createElement("div");
        cell.className = "product-cell";
        cell.innerHTML = '<div class="product-item"><div class="name"><a href="/Ornament-' +
          made + "_p_" + made + '.html">Ornament ' + made + "</a></div></div>";
        block.appendChild(cell);
      }
    }, parts[0]);
  });
})();
