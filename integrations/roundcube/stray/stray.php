<?php

/**
 * stray: asks "did you mean …?" before a message with a mistyped recipient
 * domain is sent.
 *
 * The browser never talks to stray: on Send, stray.js asks this plugin
 * (action plugin.stray-check), the plugin asks stray's HTTP check API with
 * the token from config.inc.php, and answers the browser with the results
 * only. The plugin checks again in PHP when the message is sent
 * (message_before_send), so a send without the script is still caught.
 *
 * stray only advises here; the MTA (stray's milter or policy server)
 * enforces. If stray is unreachable or slower than stray_timeout, the
 * message is sent and the failure logged (log file "stray").
 *
 * @license GNU GPLv3+ (as Roundcube's plugins)
 */
class stray extends rcube_plugin
{
    public $task = 'mail|settings';

    /** Actions that stop the send with the dialog. */
    const STOP_ACTIONS = ['reject', 'tempfail', 'hold'];

    /** How long a failed check makes the send-time check skip stray. */
    const DOWN_SECONDS = 30;

    /** @var rcmail */
    private $rc;

    public function init()
    {
        $this->rc = rcmail::get_instance();
        $this->load_config();
        $this->register_action('plugin.stray-check', [$this, 'action_check']);
        $this->add_hook('message_before_send', [$this, 'message_before_send']);
        $this->add_hook('preferences_list', [$this, 'preferences_list']);

        if ($this->rc->action == 'send') {
            $this->add_texts('localization/');
        }
        if ($this->rc->action == 'compose' && $this->configured()) {
            $this->add_texts('localization/', [
                'checking', 'dialogtitle', 'didyoumean', 'wouldreject', 'wouldhold',
                'usesuggestion', 'sendastyped', 'edit', 'inlinewarn',
            ]);
            $this->rc->output->set_env('stray_timeout', $this->timeout());
            $this->include_script('stray.js');
            $this->include_stylesheet('stray.css');
        }
    }

    /** AJAX: the browser sends To, Cc and Bcc; it gets the results back. */
    public function action_check()
    {
        $fields = [];
        foreach (['_to', '_cc', '_bcc'] as $f) {
            $fields[] = rcube_utils::get_input_string($f, rcube_utils::INPUT_POST, true);
        }
        $purpose = rcube_utils::get_input_string('_purpose', rcube_utils::INPUT_POST);
        $recipients = $this->addresses(implode(', ', $fields));
        $results = [];
        $ok = true;
        $down = !empty($_SESSION['stray_down_until']) && $_SESSION['stray_down_until'] > time();
        if ($purpose === 'inline' && $down) {
            $recipients = []; // stray just failed: no log line per pause in typing
            $ok = false;
        }
        if (!empty($recipients)) {
            $results = $this->api_check($recipients, $this->sender());
            $ok = $results !== null;
        }
        $this->rc->output->command('plugin.stray_result', [
            'purpose' => $purpose === 'inline' ? 'inline' : 'send',
            'ok'      => $ok,
            'results' => $this->for_browser($results ?: []),
        ]);
        $this->rc->output->send();
    }

    /**
     * Server side: refuse to send while a recipient stray would refuse or
     * hold was not confirmed by the user ("Send as typed").
     */
    public function message_before_send($args)
    {
        if (!$this->configured() || !empty($args['abort'])) {
            return $args;
        }
        if (!empty($_SESSION['stray_down_until']) && $_SESSION['stray_down_until'] > time()) {
            return $args; // stray just failed: do not make the user wait twice
        }
        $list = (array) $args['mailto'];
        $headers = is_object($args['message']) ? $args['message']->headers() : [];
        foreach (['Cc', 'Bcc'] as $h) {
            if (!empty($headers[$h])) {
                $list[] = $headers[$h];
            }
        }
        $recipients = $this->addresses(implode(', ', $list));
        if (empty($recipients)) {
            return $args;
        }
        $confirmed = array_map('strtolower', $this->addresses(
            (string) rcube_utils::get_input_string('_stray_confirmed', rcube_utils::INPUT_POST)));
        $sender = is_string($args['from']) && $args['from'] !== '' ? $args['from'] : $this->sender();
        $results = $this->api_check($recipients, $sender);
        if ($results === null) {
            return $args; // fail open; logged
        }
        foreach ($results as $r) {
            $action = $r['action'] ?? 'pass';
            if (in_array($action, self::STOP_ACTIONS, true) && !in_array(strtolower($r['address']), $confirmed, true)) {
                $args['abort'] = true;
                $args['result'] = false;
                $args['error'] = [
                    'label' => 'stray.sendstopped',
                    'vars'  => [
                        'address'    => $r['address'],
                        'suggestion' => $r['suggestion'] ?? '',
                    ],
                ];
                return $args;
            }
        }
        return $args;
    }

    /**
     * Settings > Preferences > Composing Messages: says whether recipients
     * are checked (read only: the settings live in config.inc.php).
     */
    public function preferences_list($args)
    {
        if ($args['section'] != 'compose') {
            return $args;
        }
        $this->add_texts('localization/');
        $state = $this->configured()
            ? $this->gettext(['name' => 'settingon', 'vars' => ['timeout' => $this->timeout()]])
            : $this->gettext('settingoff');
        $args['blocks']['main']['options']['stray'] = [
            'title'   => rcube::Q($this->gettext('settingtitle')),
            'content' => html::span(['id' => 'stray-setting'], rcube::Q($state)),
        ];
        return $args;
    }

    private function configured()
    {
        return (string) $this->rc->config->get('stray_api_url') !== ''
            && (string) $this->rc->config->get('stray_api_token') !== '';
    }

    private function timeout()
    {
        $t = (float) $this->rc->config->get('stray_timeout', 2);
        return $t > 0 ? $t : 2.0;
    }

    private function sender()
    {
        $identity = $this->rc->user ? $this->rc->user->get_identity() : null;
        return $identity['email'] ?? '';
    }

    /** Addresses in a To/Cc/Bcc string, de-duplicated, in order. */
    private function addresses($text)
    {
        $out = [];
        foreach (rcube_mime::decode_address_list((string) $text, null, false) as $a) {
            $email = trim($a['mailto'] ?? '');
            if ($email !== '' && !isset($out[strtolower($email)])) {
                $out[strtolower($email)] = $email;
            }
        }
        return array_values($out);
    }

    /** Only what the browser needs: never the token or the API's address. */
    private function for_browser(array $results)
    {
        $out = [];
        foreach ($results as $r) {
            $reasons = [];
            foreach ((array) ($r['reasons'] ?? []) as $reason) {
                if (is_array($reason) && isset($reason['message'])) {
                    $reasons[] = (string) $reason['message'];
                }
            }
            $out[] = [
                'address'    => (string) ($r['address'] ?? ''),
                'verdict'    => (string) ($r['verdict'] ?? 'ok'),
                'action'     => (string) ($r['action'] ?? 'pass'),
                'suggestion' => isset($r['suggestion']) ? (string) $r['suggestion'] : null,
                'message'    => isset($r['message']) ? (string) $r['message'] : null,
                'reasons'    => $reasons,
            ];
        }
        return $out;
    }

    /**
     * Asks stray's POST /api/v1/check. Returns the results in order, or
     * null (logged) when stray could not answer within the timeout.
     */
    private function api_check(array $recipients, $sender)
    {
        $url = (string) $this->rc->config->get('stray_api_url');
        $token = (string) $this->rc->config->get('stray_api_token');
        $timeout = $this->timeout();
        $start = microtime(true);
        $results = [];
        foreach (array_chunk($recipients, 100) as $batch) {
            $body = ['recipients' => $batch];
            if ($sender !== '') {
                $body['sender'] = $sender;
            }
            $left = $timeout - (microtime(true) - $start);
            if ($left <= 0) {
                return $this->failed($start, 'timed out');
            }
            $ctx = stream_context_create([
                'http' => [
                    'method'        => 'POST',
                    'header'        => "Content-Type: application/json\r\n"
                        . 'Authorization: Bearer ' . $token . "\r\n"
                        . "Connection: close\r\n",
                    'content'       => json_encode($body),
                    'timeout'       => $left,
                    'ignore_errors' => true,
                    'follow_location' => 0,
                ],
            ]);
            $http_response_header = null;
            $answer = @file_get_contents($url, false, $ctx);
            if ($answer === false) {
                $err = error_get_last();
                return $this->failed($start, $err['message'] ?? 'no answer');
            }
            $status = 0;
            if (!empty($http_response_header[0]) && preg_match('/^HTTP\/\S+\s+(\d{3})/', $http_response_header[0], $m)) {
                $status = (int) $m[1];
            }
            $data = json_decode($answer, true);
            if ($status != 200 || !is_array($data) || !isset($data['results']) || !is_array($data['results'])) {
                $why = is_array($data) && isset($data['error']) ? (string) $data['error'] : 'unexpected answer';
                return $this->failed($start, "HTTP $status: $why");
            }
            $results = array_merge($results, $data['results']);
        }
        unset($_SESSION['stray_down_until']);
        return $results;
    }

    private function failed($start, $why)
    {
        $_SESSION['stray_down_until'] = time() + self::DOWN_SECONDS;
        // The URL and the reason only: never the token or the recipients.
        $why = str_replace((string) $this->rc->config->get('stray_api_token'), '[token]', (string) $why);
        rcube::write_log('stray', sprintf('check failed after %d ms, sending without it: %s: %s',
            (microtime(true) - $start) * 1000, $this->rc->config->get('stray_api_url'), $why));
        return null;
    }
}
