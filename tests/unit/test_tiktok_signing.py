"""Request signing: vectors computed by hand with `openssl dgst -sha256 -hmac`."""

from ingestor.tiktok_signing import sign_request, string_to_sign

V202309_PATH = "/return_refund/202309/returns/search"
LEGACY_PATH = "/api/reverse/reverse_order/list"
# printf '%s' 'sec/return_refund/202309/returns/searchapp_keykpage_size50shop_cipherC
#   timestamp1700000000{"update_time_ge":1}sec' | openssl dgst -sha256 -hmac sec
V202309_VECTOR = "f74a2fd79505775b83a9a3f80f9ec9463a145caed96682219670be06c4b2d1ca"
# printf '%s' 'sec/api/reverse/reverse_order/listapp_keykshop_id77timestamp1700000000sec' | ...
LEGACY_VECTOR = "e0bd786f2db6e926d66f09f88deec7d7d1f6e70f829c6bf2d740a89b94324835"


def test_202309_signature_matches_hand_computed_vector_and_includes_body() -> None:
    query = {"timestamp": "1700000000", "shop_cipher": "C", "app_key": "k", "page_size": "50"}
    assert sign_request("sec", V202309_PATH, query, b'{"update_time_ge":1}') == V202309_VECTOR


def test_legacy_signature_leaves_out_sign_access_token_and_body() -> None:
    query = {"app_key": "k", "timestamp": "1700000000", "shop_id": "77",
             "access_token": "tok", "sign": "old"}
    assert sign_request("sec", LEGACY_PATH, query, None) == LEGACY_VECTOR


def test_params_are_concatenated_in_sorted_key_order_between_secrets() -> None:
    signed = string_to_sign("s", "/p", {"b": "2", "a": "1"}, b"{}")
    assert signed == b"s/pa1b2{}s"


def test_changing_the_body_changes_the_signature() -> None:
    query = {"app_key": "k", "timestamp": "1"}
    assert sign_request("s", "/p", query, b"{}") != sign_request("s", "/p", query, b'{"a":1}')


def test_signature_is_lowercase_hex_of_sha256() -> None:
    sign = sign_request("s", "/p", {}, None)
    assert len(sign) == 64
    assert sign == sign.lower()
    assert int(sign, 16) >= 0
