<?php

/*
 * Router script for `php -S`, from internal/ssptest. It serves the harness's
 * two pages and leaves every other path (module.php/saml/sp/saml2-acs.php/…
 * and the rest of SimpleSAMLphp's www directory) to the built-in server.
 *
 *   /keystep/login   starts SP-initiated SSO with the default-sp auth source.
 *                    Query: nameid, nameid_format (the request's
 *                    Subject/NameID), accr[] (RequestedAuthnContext class
 *                    refs), comparison, force (ForceAuthn), passive
 *                    (IsPassive).
 *   /keystep/result  where the login returns, also on a SAML error status:
 *                    prints the session (or the error) as JSON.
 */

$keystep = json_decode(
    file_get_contents(getenv('SIMPLESAMLPHP_CONFIG_DIR') . '/keystep.json'),
    true,
    16,
    JSON_THROW_ON_ERROR
);

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path !== '/keystep/login' && $path !== '/keystep/result') {
    return false;
}

require $keystep['ssp'] . '/www/_include.php';

$as = new \SimpleSAML\Auth\Simple('default-sp');
$result = $keystep['baseurl'] . 'keystep/result';

if ($path === '/keystep/login') {
    $params = [
        'ReturnTo' => $result,
        'ErrorURL' => $result,
        'KeepPost' => false,
    ];
    $nameID = (string) ($_GET['nameid'] ?? '');
    if ($nameID !== '') {
        // SimpleSAMLphp 1.19 takes an array (or a \SAML2\XML\saml\NameID).
        $nid = ['Value' => $nameID];
        $format = (string) ($_GET['nameid_format'] ?? '');
        if ($format !== '') {
            $nid['Format'] = $format;
        }
        $params['saml:NameID'] = $nid;
    }
    $accr = $_GET['accr'] ?? [];
    if (is_array($accr) && count($accr) > 0) {
        $params['saml:AuthnContextClassRef'] = array_values(array_map('strval', $accr));
        $comparison = (string) ($_GET['comparison'] ?? '');
        if ($comparison !== '') {
            $params['saml:AuthnContextComparison'] = $comparison;
        }
    }
    if (!empty($_GET['force'])) {
        $params['ForceAuthn'] = true;
    }
    if (!empty($_GET['passive'])) {
        $params['isPassive'] = true;
    }
    $as->login($params);
    exit;
}

header('Content-Type: application/json');
header('Cache-Control: no-store');

function keystep_json($v)
{
    echo json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
}

function keystep_string($v)
{
    if ($v === null || is_scalar($v)) {
        return (string) $v;
    }
    if ($v instanceof \SAML2\XML\saml\NameID) {
        return (string) $v->getValue();
    }
    if (is_object($v) && method_exists($v, '__toString')) {
        return (string) $v;
    }
    return json_encode($v);
}

$exception = \SimpleSAML\Auth\State::loadExceptionState();
if ($exception !== null) {
    $e = $exception[\SimpleSAML\Auth\State::EXCEPTION_DATA];
    $err = ['class' => get_class($e), 'message' => $e->getMessage()];
    if ($e instanceof \SimpleSAML\Module\saml\Error) {
        $err['status'] = (string) $e->getStatus();
        $err['substatus'] = (string) $e->getSubStatus();
        $err['message'] = (string) $e->getStatusMessage();
    }
    http_response_code(403);
    keystep_json(['error' => $err]);
    exit;
}

if (!$as->isAuthenticated()) {
    http_response_code(401);
    keystep_json(['error' => ['message' => 'not authenticated']]);
    exit;
}

$attributes = [];
foreach ($as->getAttributes() as $name => $values) {
    $attributes[$name] = array_values(array_map('keystep_string', (array) $values));
}
$nameID = $as->getAuthData('saml:sp:NameID');
keystep_json([
    'nameid' => $nameID === null ? '' : (string) $nameID->getValue(),
    'nameid_format' => $nameID === null ? '' : (string) $nameID->getFormat(),
    'attributes' => (object) $attributes,
    'authncontext' => (string) $as->getAuthData('saml:sp:AuthnContext'),
    'idp' => (string) $as->getAuthData('saml:sp:IdP'),
    'sessionindex' => (string) $as->getAuthData('saml:sp:SessionIndex'),
]);
