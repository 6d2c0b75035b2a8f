<?php

/*
 * The one SAML 2.0 service provider of a test, from internal/ssptest, set up
 * from keystep.json (written by the Go side).
 */

$keystep = json_decode(file_get_contents(__DIR__ . '/keystep.json'), true, 16, JSON_THROW_ON_ERROR);
$sp = $keystep['sp'];

$config = [
    'default-sp' => [
        'saml:SP',
        'entityID' => $sp['entity_id'],
        'idp' => $keystep['idp']['entity_id'],
        'discoURL' => null,
        'privatekey' => $sp['private_key'],
        'certificate' => $sp['certificate'],
        'sign.authnrequest' => $sp['sign_authn_requests'],
        'sign.logout' => true,
        'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        'assertion.encryption' => $sp['encrypt_assertions'],
        // false: no NameIDPolicy in the AuthnRequest (null would ask for
        // transient).
        'NameIDPolicy' => $sp['name_id_format'] === ''
            ? false
            : ['Format' => $sp['name_id_format'], 'AllowCreate' => true],
    ],
];
