// The payment page: copy the invoice, and ask the gateway whether it is paid until it is; then
// load the resource again, with the credential the gateway set in a cookie.
(function () {
  'use strict';
  var root = document.getElementById('plannt-pay');
  if (!root) return;
  var hash = root.getAttribute('data-payment-hash');
  var macaroon = root.getAttribute('data-macaroon');
  var invoice = root.getAttribute('data-invoice');
  var expires = Number(root.getAttribute('data-expires')) * 1000;
  var status = document.getElementById('plannt-status');
  var copy = document.getElementById('plannt-copy');
  var say = function (text) { status.textContent = text; };

  copy.addEventListener('click', function () {
    var done = function () { copy.textContent = 'Copied'; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(invoice).then(done, function () { say('Copy the invoice below by hand.'); });
    } else {
      say('Copy the invoice below by hand.');
    }
  });

  var delay = 1500;
  var poll = function () {
    if (Date.now() > expires) {
      say('This invoice has expired: reload the page for a new one.');
      return;
    }
    fetch('/_plannt/pay/' + hash, {
      headers: { 'Plannt-Macaroon': macaroon },
      credentials: 'same-origin',
      cache: 'no-store',
    }).then(function (response) {
      if (response.status === 200) {
        say('Paid. Loading…');
        location.replace(location.pathname + location.search);
        return;
      }
      if (response.status === 410) {
        say('This invoice has expired: reload the page for a new one.');
        return;
      }
      if (response.status === 429 || response.status === 503) {
        delay = Math.min(delay * 2, 15000);
      } else if (response.status !== 202) {
        say('The gateway cannot check this payment (' + response.status + '); reload the page.');
        return;
      }
      setTimeout(poll, delay);
    }, function () {
      delay = Math.min(delay * 2, 15000);
      setTimeout(poll, delay);
    });
  };
  say('Waiting for the payment…');
  setTimeout(poll, delay);
})();
