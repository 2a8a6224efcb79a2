/**
 * stray plugin for Roundcube: the compose window's side.
 *
 * On Send (the "beforesend" event) To, Cc and Bcc go to the plugin
 * (plugin.stray-check), which asks stray. A recipient stray would refuse or
 * hold stops the send with a dialog: Use the suggestion, Send as typed, or
 * Edit. Warn-level findings show under the field while the user types and
 * never block. If the plugin does not answer in time the message is sent.
 *
 * Stable hooks for styles and tests: the dialog #stray-dialog with one
 * .stray-item[data-address] per recipient, its buttons
 * .stray-use-suggestion, .stray-send-as-typed, .stray-edit; inline notes
 * #stray-inline-_to (_cc, _bcc) with .stray-inline-item[data-address].
 *
 * @license GNU GPLv3+
 */
(function () {
  'use strict';

  var STOP = { reject: 'wouldreject', tempfail: 'wouldreject', hold: 'wouldhold' };
  var FIELDS = ['_to', '_cc', '_bcc'];

  function label(name, vars) {
    var s = rcmail.gettext(name, 'stray');
    $.each(vars || {}, function (k, v) { s = s.split('$' + k).join(v); });
    return s;
  }

  function init() {
    var form = rcmail.gui_objects.messageform;
    if (!form) {
      return;
    }
    var state = {
      passed: false,    // the next send goes through without a check
      pending: null,    // the props of the send waiting for the answer
      timer: null,
      confirmed: {},    // lower-cased addresses the user chose to send as typed
      inlineTimer: null,
      lastInline: ''
    };
    var confirmedField = $('<input type="hidden" name="_stray_confirmed">').appendTo(form);
    var timeoutMs = (parseFloat(rcmail.env.stray_timeout) || 2) * 1000 + 2000;

    function values() {
      var data = {};
      $.each(FIELDS, function (_, id) {
        var field = $('#' + id), v = field.val() || '';
        // text still being typed in Elastic's recipient widget
        var pending = field.siblings('.recipient-input').find('input').val();
        if (pending) {
          v += ', ' + pending;
        }
        data[id] = v;
      });
      return data;
    }

    function proceed(props) {
      if (rcmail.busy) {
        setTimeout(function () { proceed(props); }, 100);
        return;
      }
      state.passed = true;
      rcmail.command('send', props);
    }

    rcmail.addEventListener('beforesend', function (props) {
      if (state.passed) {
        state.passed = false;
        return props;
      }
      if (state.pending !== null) {
        return false; // a check is running
      }
      // props may be the click event: keep only what "send" reads
      state.pending = props && props.nocheck ? { nocheck: true } : {};
      var data = values();
      data._purpose = 'send';
      var lock = rcmail.set_busy(true, 'stray.checking');
      rcmail.http_post('plugin.stray-check', data, lock);
      // never hang on stray: the plugin gives up after stray_timeout; if
      // even the plugin does not answer, send anyway
      state.timer = setTimeout(function () {
        if (state.pending !== null) {
          var p = state.pending;
          state.pending = null;
          rcmail.set_busy(false, null, lock);
          proceed(p);
        }
      }, timeoutMs);
      return false;
    });

    rcmail.addEventListener('plugin.stray_result', function (answer) {
      if (answer.purpose === 'inline') {
        showInline(answer.results || []);
        return;
      }
      if (state.pending === null) {
        return; // too late: already sent
      }
      clearTimeout(state.timer);
      var props = state.pending;
      state.pending = null;
      showInline(answer.results || []);
      var stop = $.grep(answer.results || [], function (r) {
        return STOP[r.action] && !state.confirmed[r.address.toLowerCase()];
      });
      if (!answer.ok || !stop.length) {
        proceed(props);
        return;
      }
      dialog(stop, props);
    });

    function replaceAddress(from, to) {
      var re = new RegExp('(^|[\\s<,;"])' + from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '(?=$|[\\s>,;"])', 'gi');
      $.each(FIELDS, function (_, id) {
        var field = $('#' + id), v = field.val() || '';
        var pendingInput = field.siblings('.recipient-input').find('input');
        if (pendingInput.val()) {
          v = v + (v ? ', ' : '') + pendingInput.val();
          pendingInput.val('');
        }
        var nv = v.replace(re, function (m, pre) { return pre + to; });
        if (nv !== v || pendingInput.length) {
          field.val(nv).change();
        }
      });
    }

    function dialog(stop, props) {
      var box = $('<div id="stray-dialog">');
      $.each(stop, function (_, r) {
        var item = $('<div class="stray-item">').attr('data-address', r.address)
          .attr('data-action', r.action);
        item.append($('<p class="stray-what">').text(label(STOP[r.action], { address: r.address })));
        if (r.suggestion) {
          item.append($('<p class="stray-suggestion">').text(label('didyoumean', { suggestion: r.suggestion })));
        }
        if (r.reasons && r.reasons.length) {
          var ul = $('<ul class="stray-reasons">');
          $.each(r.reasons, function (_, reason) { ul.append($('<li>').text(reason)); });
          item.append(ul);
        }
        box.append(item);
      });
      var withSuggestion = $.grep(stop, function (r) { return !!r.suggestion; });
      var buttons = [];
      var popup;
      if (withSuggestion.length) {
        buttons.push({
          text: label('usesuggestion'), 'class': 'mainaction stray-use-suggestion',
          click: function () {
            $.each(withSuggestion, function (_, r) { replaceAddress(r.address, r.suggestion); });
            popup.dialog('close');
            rcmail.command('send', props); // checked again
          }
        });
      }
      buttons.push({
        text: label('sendastyped'), 'class': 'stray-send-as-typed',
        click: function () {
          $.each(stop, function (_, r) { state.confirmed[r.address.toLowerCase()] = true; });
          confirmedField.val(Object.keys(state.confirmed).join(', '));
          popup.dialog('close');
          proceed(props);
        }
      });
      buttons.push({
        text: label('edit'), 'class': 'cancel stray-edit',
        click: function () {
          popup.dialog('close');
          var field = $.grep(FIELDS, function (id) { return ($('#' + id).val() || '').toLowerCase().indexOf(stop[0].address.toLowerCase()) >= 0; })[0] || '_to';
          $('#' + field).focus();
        }
      });
      popup = rcmail.show_popup_dialog(box, label('dialogtitle'), buttons, { width: 560 });
    }

    // Inline, never blocking: warn-level findings under their field.
    function showInline(results) {
      var data = values();
      $.each(FIELDS, function (_, id) {
        var field = $('#' + id);
        if (!field.length) {
          return;
        }
        var box = $('#stray-inline-' + id);
        if (!box.length) {
          box = $('<div class="stray-inline" role="status" aria-live="polite">').attr('id', 'stray-inline-' + id);
          var anchor = field.closest('.input-group');
          (anchor.length ? anchor : field).after(box);
        }
        box.empty();
        var v = (data[id] || '').toLowerCase();
        $.each(results, function (_, r) {
          if (r.verdict !== 'warn' || !r.address || v.indexOf(r.address.toLowerCase()) < 0) {
            return;
          }
          box.append($('<div class="stray-inline-item">').attr('data-address', r.address)
            .text(r.suggestion ? label('inlinewarn', { address: r.address, suggestion: r.suggestion }) : (r.message || r.address)));
        });
        box.toggle(box.children().length > 0);
      });
    }

    function scheduleInline() {
      clearTimeout(state.inlineTimer);
      state.inlineTimer = setTimeout(function () {
        var data = values(), any = false, key = FIELDS.map(function (id) { return data[id]; }).join('\n');
        $.each(data, function (_, v) { any = any || /@/.test(v); });
        if (any && state.pending === null && key !== state.lastInline) {
          state.lastInline = key; // ask once per set of recipients
          data._purpose = 'inline';
          rcmail.http_post('plugin.stray-check', data);
        }
      }, 700);
    }
    $(document).on('input change blur', '.recipient-input input, #_to, #_cc, #_bcc', scheduleInline);
  }

  if (window.rcmail) {
    rcmail.addEventListener('init', init);
  }
})();
