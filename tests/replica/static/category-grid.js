/* The Ornament Factory replica: fills the empty year grid (#itemsBlock) in the browser.
 * Contract §C4/§3.5: the server sends no products; this script fetches them from the
 * replica-only endpoint and builds the 3dcart item markup. Quick-view links get their
 * href only on mouseenter, as on the real shop. */
(function () {
  "use strict";
  var block = document.getElementById("productCategoryBlock");
  var grid = document.getElementById("itemsBlock");
  if (!block || !grid) {
    return;
  }
  var query = "cat=" + encodeURIComponent(block.getAttribute("data-catid")) +
    "&page=" + encodeURIComponent(block.getAttribute("data-page")) +
    "&viewall=" + encodeURIComponent(block.getAttribute("data-viewall"));

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function priceBlock(item) {
    var price = element("div", { "class": "price" });
    if (item.sale_price) {
      price.appendChild(element("span", { "class": "price1" }, item.sale_price));
      price.appendChild(document.createTextNode(" "));
      price.appendChild(element("del", { "class": "price2" }, item.price + "\u00a0"));
      price.appendChild(element("div", { "class": "on-sale" }, "On Sale"));
    } else {
      price.appendChild(element("span", { "class": "hidden" }, "Price:\u00a0"));
      price.appendChild(document.createTextNode(item.price));
    }
    return price;
  }

  function cell(item) {
    var outer = element("div", { "class": "product-cell", "data-catalogid": String(item.catalogid) });
    var card = element("div", { "class": "product-item item-template-0" });
    var image = element("div", { "class": "img" });
    var imageLink = element("a", { href: item.url });
    imageLink.appendChild(element("img", {
      "class": "img-responsive", src: item.thumb, alt: item.name, id: "qv_" + item.catalogid
    }));
    image.appendChild(imageLink);
    var quick = element("div", { "class": "quickview" });
    var quickLink = element("a", { "class": "btn btn-quickview", "data-quickview-url": item.qv_url }, "Quick View");
    quick.appendChild(quickLink);
    image.appendChild(quick);
    card.addEventListener("mouseenter", function () {
      quickLink.setAttribute("href", window.location.origin + "/" + item.qv_url);
    });
    var meta = element("div", { "class": "product-meta" });
    var name = element("div", { "class": "name" });
    name.appendChild(element("a", { href: item.url }, item.name));
    meta.appendChild(name);
    if (item.price !== null) {  // null: a tile whose price the theme lost (tile_broken)
      meta.appendChild(priceBlock(item));
    }
    card.appendChild(image);
    card.appendChild(meta);
    outer.appendChild(card);
    return outer;
  }

  function fill(data) {
    var cells = document.createDocumentFragment();
    data.items.forEach(function (item) {
      cells.appendChild(cell(item));
    });
    grid.appendChild(cells);
    grid.setAttribute("data-loaded", String(data.items.length));
  }

  function load(attempt) {
    fetch("/ajax_category_items.asp?" + query, { credentials: "same-origin" })
      .then(function (response) {
        if ((response.status === 429 || response.status === 503) && attempt < 5) {
          var wait = parseInt(response.headers.get("Retry-After") || "1", 10);
          window.setTimeout(function () { load(attempt + 1); }, Math.max(wait, 1) * 1000);
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        if (data) {
          fill(data);
        }
      })
      .catch(function (error) {
        grid.setAttribute("data-error", String(error));
      });
  }

  window.setTimeout(function () { load(0); }, 150);
}());
