<?php

/*
 * The identity provider of a test, from internal/ssptest, described by
 * keystep.json in the configuration directory (written by the Go side).
 */

$keystep = json_decode(
    file_get_contents(\SimpleSAML\Utils\Config::getConfigDir() . '/keystep.json'),
    true,
    16,
    JSON_THROW_ON_ERROR
);
$idp = $keystep['idp'];

$keys = [];
foreach ($idp['certificates'] as $cert) {
    $keys[] = [
        'signing' => true,
        'encryption' => false,
        'type' => 'X509Certificate',
        'X509Certificate' => $cert,
    ];
}

$metadata[$idp['entity_id']] = [
    'SingleSignOnService' => [[
        'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'Location' => $idp['sso_url'],
    ]],
    'SingleLogoutService' => $idp['slo_url'] === '' ? [] : [[
        'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
        'Location' => $idp['slo_url'],
    ]],
    'keys' => $keys,
];
